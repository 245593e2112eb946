// STUNWire — natlab's pure STUN/TURN/ICE message codec (RFC 8489, 8656, 5780, 8445, 6062, 7983).
// No I/O. Imports swift-crypto (HMAC-SHA1/SHA256, MD5, SHA-256) and Foundation (NFKC for SASLprep).
//
// Receiving (a server's hot path):
//
//     guard STUNMessage.isSTUN(datagram) else { ... ChannelData.header(datagram) ... }
//     let packet = try STUNPacket(datagram)            // framing + FINGERPRINT checked, no allocation
//     if !packet.unknownComprehensionRequired.isEmpty { answer 420 with UNKNOWN-ATTRIBUTES }
//     let user = try packet.attribute(.username)       // lazy, one attribute decoded
//     packet.verifyIntegrity(key: key)                 // over the original bytes (RFC 8489 §14.5/§14.6)
//     let request = try packet.message()               // everything, typed
//
// Sending:
//
//     let response = STUNMessage.successResponse(to: request, attributes: [.xorMappedAddress(source)])
//     let bytes = response.encode(integrity: key, fingerprint: true)
//
// Keys: STUNIntegrityKey.shortTerm(password:) (ICE), .longTerm(username:realm:password:algorithm:) (TURN).
// Errors: every decode failure is a typed STUNDecodeError; nothing traps on any input.
