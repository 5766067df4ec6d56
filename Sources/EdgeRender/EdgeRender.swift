/// Every config file as a pure function of the model.
public enum EdgeRender {}
