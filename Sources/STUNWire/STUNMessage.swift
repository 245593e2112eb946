// STUNMessage: a decoded message as a value.

/// A STUN message: type (method and class), transaction ID and attributes in wire order.
public struct STUNMessage: Sendable, Hashable, CustomStringConvertible {
    public var type: STUNMessageType
    public var transactionID: STUNTransactionID
    public var attributes: [STUNAttribute]

    public init(type: STUNMessageType, transactionID: STUNTransactionID = .random(), attributes: [STUNAttribute] = []) {
        self.type = type
        self.transactionID = transactionID
        self.attributes = attributes
    }

    public init(method: STUNMethod, class messageClass: STUNClass, transactionID: STUNTransactionID = .random(),
                attributes: [STUNAttribute] = []) {
        self.init(type: STUNMessageType(method: method, messageClass: messageClass), transactionID: transactionID,
                  attributes: attributes)
    }

    public var method: STUNMethod { type.method }
    public var messageClass: STUNClass { type.messageClass }

    // MARK: decoding

    /// Decodes and validates one whole message (see `STUNDecodeError` for what is checked).
    /// Integrity is not checked here: use `STUNPacket.verifyIntegrity(key:)` on the same bytes.
    public static func decode(_ bytes: [UInt8], options: STUNDecodeOptions = .default) throws(STUNDecodeError) -> STUNMessage {
        try STUNPacket(bytes, options: options).message(options: options)
    }

    // MARK: attribute access

    /// The first attribute of `type`.
    public func first(_ type: STUNAttributeType) -> STUNAttribute? {
        attributes.first { $0.type == type }
    }

    public func contains(_ type: STUNAttributeType) -> Bool { first(type) != nil }

    /// Types in 0x0000–0x7FFF that this codec does not understand (answer a request with 420).
    public var unknownComprehensionRequired: [UInt16] {
        var out: [UInt16] = []
        for a in attributes {
            if case .unknown(let t, _) = a, t < 0x8000, !out.contains(t) { out.append(t) }
        }
        return out
    }

    public var xorMappedAddress: STUNAddress? {
        for a in attributes { if case .xorMappedAddress(let v) = a { return v } }
        return nil
    }

    public var mappedAddress: STUNAddress? {
        for a in attributes { if case .mappedAddress(let v) = a { return v } }
        return nil
    }

    /// XOR-MAPPED-ADDRESS, else the legacy 0x8020 form, else MAPPED-ADDRESS (what clients should accept).
    public var reflexiveAddress: STUNAddress? {
        if let a = xorMappedAddress { return a }
        for a in attributes {
            if case .unknown(STUNAttributeType.xorMappedAddressLegacy.rawValue, let v) = a {
                if let addr = decodeLegacyXOR(v) { return addr }
            }
        }
        return mappedAddress
    }

    private func decodeLegacyXOR(_ v: [UInt8]) -> STUNAddress? {
        v.withUnsafeBytes { b -> STUNAddress? in
            try? decodeAttributeValue(type: STUNAttributeType.xorMappedAddress.rawValue, b, 0..<b.count,
                                      transactionID: transactionID, options: .default).addressValue
        }
    }

    public var xorPeerAddresses: [STUNAddress] {
        attributes.compactMap { if case .xorPeerAddress(let v) = $0 { v } else { nil } }
    }

    public var xorRelayedAddress: STUNAddress? {
        for a in attributes { if case .xorRelayedAddress(let v) = a { return v } }
        return nil
    }

    public var username: String? {
        for a in attributes { if case .username(let v) = a { return v } }
        return nil
    }

    public var realm: String? {
        for a in attributes { if case .realm(let v) = a { return v } }
        return nil
    }

    public var nonce: String? {
        for a in attributes { if case .nonce(let v) = a { return v } }
        return nil
    }

    public var software: String? {
        for a in attributes { if case .software(let v) = a { return v } }
        return nil
    }

    public var errorCode: STUNErrorCode? {
        for a in attributes { if case .errorCode(let v) = a { return v } }
        return nil
    }

    public var lifetime: UInt32? {
        for a in attributes { if case .lifetime(let v) = a { return v } }
        return nil
    }

    public var channelNumber: UInt16? {
        for a in attributes { if case .channelNumber(let v) = a { return v } }
        return nil
    }

    public var data: [UInt8]? {
        for a in attributes { if case .data(let v) = a { return v } }
        return nil
    }

    public var priority: UInt32? {
        for a in attributes { if case .priority(let v) = a { return v } }
        return nil
    }

    // MARK: building responses

    /// A success response to `request` (same method and transaction ID).
    public static func successResponse(to request: STUNMessage, attributes: [STUNAttribute] = []) -> STUNMessage {
        STUNMessage(method: request.method, class: .successResponse, transactionID: request.transactionID,
                    attributes: attributes)
    }

    /// An error response to `request` with ERROR-CODE first, then `attributes`.
    public static func errorResponse(to request: STUNMessage, error: STUNErrorCode,
                                     attributes: [STUNAttribute] = []) -> STUNMessage {
        STUNMessage(method: request.method, class: .errorResponse, transactionID: request.transactionID,
                    attributes: [.errorCode(error)] + attributes)
    }

    /// 420 Unknown Attribute listing the request's unknown comprehension-required attributes.
    public static func unknownAttributeResponse(to request: STUNMessage, types: [UInt16]) -> STUNMessage {
        errorResponse(to: request, error: .unknownAttribute, attributes: [.unknownAttributes(types)])
    }

    public var description: String {
        "\(type) \(transactionID) [" + attributes.map { "\($0)" }.joined(separator: ", ") + "]"
    }
}

extension STUNAttribute {
    /// The address carried by any address attribute.
    public var addressValue: STUNAddress? {
        switch self {
        case .mappedAddress(let a), .xorMappedAddress(let a), .alternateServer(let a), .responseOrigin(let a),
             .otherAddress(let a), .sourceAddress(let a), .changedAddress(let a), .xorPeerAddress(let a),
             .xorRelayedAddress(let a):
            a
        default:
            nil
        }
    }
}
