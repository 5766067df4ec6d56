/// The registration protocol (docs/protocol.md), shared by the agent (client) and the relay (server).
public enum Registration {}
