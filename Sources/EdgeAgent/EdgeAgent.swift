/// Device side: find the stick, unseal, verify, render, apply one generation, supervise.
public enum EdgeAgent {}
