// libFuzzer entry for the registration packet parser (Sources/Registration/Messages.swift).
// Built by fuzz/run.sh together with that one file; not part of the Swift package.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessages(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? MessageCodec.parse(input) else { return 0 }
    // A parsed message re-encodes to exactly the bytes its MAC covers, and the MAC is the rest.
    let encoded: [UInt8]
    switch message.body {
    case .hello(let hello): encoded = hello.authenticated
    case .challenge(let challenge): encoded = challenge.authenticated
    case .register(let register): encoded = register.authenticated
    case .result(let answer): encoded = answer.authenticated
    }
    precondition(encoded == Array(message.authenticated), "re-encoding differs from the input")
    precondition(encoded + Array(message.mac) == input, "authenticated bytes + MAC are not the datagram")
    precondition(input.count <= Wire.maximumSize)
    return 0
}
