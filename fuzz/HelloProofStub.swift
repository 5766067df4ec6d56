// fuzz/run.sh only: the HELLO proof is an HMAC (KeySchedule.swift, SystemCrypto), which the parser
// never computes; the fuzz build of Messages.swift gets this stand-in so it needs no crypto.
public enum HelloProof {
    public static let covered = 52
    public static let none = [UInt8](repeating: 0, count: Wire.macSize)
    public static func compute(relayPublicKey: [UInt8], covering bytes: [UInt8]) -> [UInt8] { none }
}
