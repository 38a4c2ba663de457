import Foundation

/// The keep-alive timeout the target applies to a controller, as far as the capture tells.
enum EffectiveKATO {
    /// KATO in ms and how it was derived.
    case known(ms: UInt32, source: String)
    /// KATO 0 on an I/O controller: keep-alive is off, nothing can expire.
    case disabled
    /// The Connect is not in the capture.
    case unknown

    static func of(_ ctl: ControllerModel, config: RuleConfig) -> EffectiveKATO {
        guard let kato = ctl.kato else { return .unknown }
        if kato > 0 { return .known(ms: kato, source: "KATO \(kato) ms from the Connect") }
        if ctl.discovery {
            return .known(ms: config.discoveryKATOms,
                          source: "Connect KATO 0 on a discovery controller: the target's default \(formatSeconds(Double(config.discoveryKATOms) / 1000))")
        }
        return .disabled
    }
}

func seconds(_ from: FrameRef, _ to: FrameRef) -> Double { Double(to.timeNs &- from.timeNs) / 1e9 }


func describe(_ c: ConnectionModel) -> String { "\(c.host) → \(c.target)" }

/// Connections whose Connect is missing: keep-alive rules cannot judge them.
func unjudgedMidStream(_ model: SessionModel, rule: String) -> [Unjudged] {
    model.connections.filter { $0.connect == nil }.map {
        Unjudged(rule: rule, connection: $0.id,
                 reason: "the capture starts after this connection's Connect, so its queue, controller and KATO are unknown")
    }
}

