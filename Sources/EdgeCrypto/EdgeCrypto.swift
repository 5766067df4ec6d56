/// Key derivation, age v1, signify, sealed profiles and site certificates.
public enum EdgeCrypto {}
