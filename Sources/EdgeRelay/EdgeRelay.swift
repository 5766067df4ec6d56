/// The relay's registration server and WireGuard control.
public enum EdgeRelay {}
