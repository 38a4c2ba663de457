/// Runs the rules over a session model.
public struct RuleEngine: Sendable {
    /// Every rule, in the order `--rules` lists them.
    public static let allRules: [any Rule] = [
        DiscoveryKATOZeroRule(),
        KeepAliveExpiredRule(),
        KeepAliveOverdueRule(),
        KeepAliveMarginRule(),
        ReconnectLoopRule(),
        ConnectRejectedRule(),
        TerminationRequestRule(),
        DigestErrorRule(),
        KeepAliveFailedRule(),
        CommandTimeoutRule(),
        CommandsLostRule(),
        AsyncEventRule(),
        TargetTeardownRule(),
        ConnectRefusedRule(),
        OutageRule(),
        TCPLossRule(),
    ]

    public var config: RuleConfig
    public var disabled: Set<String>

    public init(config: RuleConfig = RuleConfig(), disabled: Set<String> = []) {
        self.config = config
        self.disabled = disabled
    }

    public static func rule(_ id: String) -> (any Rule)? { allRules.first { $0.id == id } }

    public func run(_ model: SessionModel) -> RuleResult {
        var out = RuleResult()
        for rule in Self.allRules where !disabled.contains(rule.id) {
            let r = rule.evaluate(model, config: config)
            out.findings += r.findings.map { f in
                var f = f
                f.evidence.sort { ($0.ref.file, $0.ref.frame) < ($1.ref.file, $1.ref.frame) }
                return f
            }
            out.unjudged += r.unjudged
        }
        // Most severe first, then in capture order.
        out.findings.sort {
            if $0.severity != $1.severity { return $0.severity > $1.severity }
            return ($0.ref.file, $0.ref.timeNs, $0.ref.frame) < ($1.ref.file, $1.ref.timeNs, $1.ref.frame)
        }
        return out
    }
}
