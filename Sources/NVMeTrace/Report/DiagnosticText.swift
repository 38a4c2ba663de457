/// Diagnostics in prose: the one place their words are chosen (the JSON report's warning
/// samples, the CLI's `warning[id]:` lines and the text report all read `description`).
extension Diagnostic: CustomStringConvertible {
    public var message: String { event.message }

    public var description: String {
        var s = "\(file): frame \(frame): "
        if let connection { s += "connection \(connection): " }
        return s + message
    }
}

extension Diagnostic.Side: CustomStringConvertible {
    public var description: String {
        switch self {
        case .hostToController: "host→controller"
        case .controllerToHost: "controller→host"
        }
    }
}

extension Diagnostic.Recognition: CustomStringConvertible {
    public var description: String {
        switch self {
        case .runOfPDUHeaders: "a run of PDU headers showed this connection to be NVMe/TCP"
        case let .targetProven(target, prover): "\(target) was shown to speak NVMe/TCP by the ICReq of connection \(prover)"
        }
    }
}

extension Diagnostic.Event {
    public var message: String {
        switch self {
        case let .timeBackwards(step, previous):
            "timestamp \(formatSeconds(Double(step) / 1e9)) earlier than frame \(previous)'s: time goes backwards, so durations, keep-alive gaps and timer findings may be wrong"
        case let .timeBackwardsRepeatedly(times, largest):
            "timestamps went backwards \(times) times in all; the largest step back (\(formatSeconds(Double(largest) / 1e9))) is at this frame"
        case let .malformedPacket(what):
            "malformed packet: \(what)"
        case let .unsupportedLinkType(t):
            "unsupported link-layer type \(t)"
        case let .bytesMissing(side, offset, bytes, inside):
            "\(side) stream offset \(offset): \(bytes) bytes missing from the capture" + (inside ? " (inside a PDU; framing continues)" : "")
        case let .conflictingRetransmission(side, segments):
            "\(side): \(segments) retransmitted segment(s) carried bytes that differ from the first copy; the first copy was decoded"
        case let .decodedLate(why):
            "decoded as NVMe/TCP from here on: \(why); its earlier bytes were not kept"
        case let .decodingStartsLate(side, bytes, why):
            "\(side) stream offset \(bytes): decoding starts here (\(why)); the \(bytes) bytes before it were not decoded"
        case let .invalidHeader(side, offset, problem):
            "\(side) stream offset \(offset): invalid PDU header: \(problem); searching for the next PDU"
        case let .resynchronized(side, offset, skipped):
            "\(side) PDU framing resumed at stream offset \(offset) after skipping \(skipped) bytes"
        case let .unframedAtEnd(side, offset, skipped):
            "\(side) stream ended at offset \(offset) before PDU framing resumed: \(skipped) bytes could not be framed"
        case let .truncatedAtEnd(side, offset, missing):
            "\(side) stream ends inside a PDU at offset \(offset) (\(missing) bytes missing)"
        case let .headerDigestMismatch(type, received, computed):
            "\(type.name) header digest mismatch (received \(hexValue(received, digits: 8)), computed \(hexValue(computed, digits: 8))): header not trusted"
        case let .dataDigestMismatch(type, received, computed):
            "\(type.name) data digest mismatch (received \(hexValue(received, digits: 8)), computed \(hexValue(computed, digits: 8)))"
        case let .wrongDirection(type, byInitiator):
            "\(type.name) sent by the \(byInitiator ? "initiator" : "responder"), which does not send this type"
        case .tls:
            "host→controller stream starts with a TLS handshake record (byte 0x16) instead of an ICReq: NVMe/TCP secured with TLS cannot be decoded from a capture; framing warnings for this connection are left out"
        case let .unmatchedCompletion(cid):
            "completion for CID \(cid) whose command is not in the capture"
        case let .cidReused(cid):
            "command reuses CID \(cid) while the previous command with it is outstanding"
        case let .shortConnectData(bytes):
            "Connect data is \(bytes) bytes, shorter than 1024"
        case let .suppressed(connection):
            connection ? "further warnings for this connection are suppressed" : "further packet-level warnings are suppressed"
        }
    }
}
