/// TCP trouble under an NVMe/TCP connection: retransmissions past a threshold, or a receive
/// window closed for a good part of KATO. Both stall PDUs, and so explain keep-alive and command
/// timeouts that the NVMe layer alone does not.
struct TCPLossRule: Rule {
    let id = "tcp-loss"
    let severity = Severity.warning
    let summary = "TCP retransmitted segments past a threshold, or a zero window outlasted a quarter of KATO"
    let explanation = """
        NVMe/TCP rides on one TCP connection per queue: a segment lost on the wire holds back every \
        PDU behind it until the sender retransmits it (after a retransmission timeout of 200 ms or \
        more, doubling each time), and a receiver that advertises a zero window (RFC 9293 \
        §3.8.6.2) stops the peer altogether. Retransmissions beyond a fraction of a per cent of a \
        connection's segments, or a zero window lasting a quarter of KATO, are enough to delay Keep \
        Alives and completions into timeouts. Bytes the snap length cut, or bytes missing from the \
        capture alone, are no loss on the wire and do not count.
        """
    let fix = "Look at the path between host and target: interface errors and drops (ip -s link, ethtool -S), congestion and buffer sizes on switches, MTU mismatches; a zero window means the receiver stopped reading (an overloaded target or host CPU, a stuck queue)."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for i in model.connections.indices {
            let t = model.connections[i].tcp
            guard t.retransmittedSegments > 0 || t.zeroWindows > 0 else { continue }
            let c = model.connections[i]
            var facts: [String] = []
            var evidence: [Evidence] = []
            let retrans = t.retransmittedSegments
            let share = t.packets > 0 ? Double(retrans) / Double(t.packets) : 0
            let lossy = retrans >= config.tcpLossMinRetransmissions && share >= config.tcpLossFraction
            if lossy {
                var sides: [String] = []
                for (side, peer, s) in [("host", "target", t.hostStream), ("target", "host", t.targetStream)] where s.retransmittedSegments > 0 {
                    sides.append("the \(side) sent \(s.retransmittedSegments) again (its segments, or the \(peer)'s acknowledgements of them, were lost)")
                    if let f = s.firstRetransmission { evidence.append(Evidence(f, "first retransmission by the \(side)", connection: c.id)) }
                    if let l = s.lastRetransmission, l != s.firstRetransmission { evidence.append(Evidence(l, "last retransmission by the \(side)", connection: c.id)) }
                }
                facts.append("\(retrans) of its \(t.packets) segments were retransmissions (\(Self.percent(share)), past \(Self.percent(config.tcpLossFraction))): \(sides.joined(separator: "; "))")
            }
            var zeroWindowLong = false
            if let z = t.longestZeroWindow {
                let kato = Self.kato(of: c, model: model, config: config)
                let zs = Double(z.ns) / 1e9
                if let kato {
                    zeroWindowLong = zs > kato * config.zeroWindowKATOFraction
                    if zeroWindowLong {
                        evidence.append(Evidence(z.start, "zero window advertised by the \(z.side.rawValue)", connection: c.id))
                        facts.append("the \(z.side.rawValue) advertised a zero window for \(formatSeconds(zs)) from frame \(z.start.frame) (\(t.zeroWindows) zero-window period\(t.zeroWindows == 1 ? "" : "s"), \(formatSeconds(Double(t.host.zeroWindowNs + t.target.zeroWindowNs) / 1e9)) in all), more than a quarter of KATO \(formatSeconds(kato))")
                    }
                } else if !lossy {
                    out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: "the \(z.side.rawValue) advertised a zero window for \(formatSeconds(zs)) (from frame \(z.start.frame)), but the KATO of this connection's controller is not known to compare it with"))
                }
            }
            guard lossy || zeroWindowLong else { continue }
            if t.missingBytes > 0 { facts.append("besides, \(t.missingBytes) bytes never reached the capture (acknowledged or given up; capture loss, not wire loss)") }
            out.findings.append(finding(
                title: "TCP \(lossy ? "loss" : "stall") on \(describe(c)): \(lossy ? "\(retrans) retransmitted segments (\(Self.percent(share)))" : "")\(lossy && zeroWindowLong ? ", " : "")\(zeroWindowLong ? "a zero window of \(formatSeconds(Double(t.longestZeroWindow!.ns) / 1e9))" : "")",
                connection: c.id, ref: evidence.map(\.ref).min { $0.timeNs < $1.timeNs } ?? c.firstRef,
                detail: facts.joined(separator: "; ") + ".", evidence: evidence,
                basis: [.observed("TCP sequence numbers and windows of the connection's segments (tshark: tcp.analysis.retransmission, tcp.analysis.zero_window)")]))
        }
        return out
    }

    /// KATO in seconds that applies to the connection's controller (nil when not known, or off).
    static func kato(of c: ConnectionModel, model: SessionModel, config: RuleConfig) -> Double? {
        guard let i = c.controller, let admin = model.connection(model.controllers[i].adminConnection) else { return nil }
        switch EffectiveKATO.of(model.controllers[i], admin: admin, config: config) {
        case .known(let ms, _): return Double(ms) / 1000
        case .inferred(let lo, _, _): return Double(lo) / 1000
        case .disabled, .unknown: return nil
        }
    }

    static func percent(_ x: Double) -> String {
        let p = x * 100
        return p >= 10 ? "\(Int(p.rounded()))%" : "\((p * 10).rounded() / 10)%"
    }
}
