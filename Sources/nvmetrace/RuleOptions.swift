import ArgumentParser
import Foundation
import NVMeTrace

/// The rules' settings, the same for `analyze` (files and `-i`) and `monitor`.
struct RuleOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Turn a rule off (repeatable); see --rules.", valueName: "rule"))
    var disable: [String] = []

    @Option(name: .long, help: ArgumentHelp("Keep-alive timeout (seconds) the target applies to a discovery controller whose Connect carried KATO 0.", valueName: "seconds"))
    var discoveryKato: Double = 120

    @Option(name: .long, help: ArgumentHelp("The host's I/O command timeout (seconds) command-timeout judges I/O queues by (Linux nvme_core.io_timeout).", valueName: "seconds"))
    var ioTimeout: Double = 30

    @Option(name: .long, help: ArgumentHelp("The host's admin command timeout (seconds) command-timeout judges admin queues by (Linux nvme_core.admin_timeout).", valueName: "seconds"))
    var adminTimeout: Double = 60

    @Option(name: .long, help: ArgumentHelp("An outage of an I/O controller this long or longer (seconds) is a warning, shorter ones information (Linux's reconnect_delay is 10 s).", valueName: "seconds"))
    var outageWarning: Double = 10

    func validate() throws {
        guard discoveryKato >= 0.001, discoveryKato < 4_000_000 else { throw ValidationError("--discovery-kato must be a positive number of seconds.") }
        for (name, v) in [("--io-timeout", ioTimeout), ("--admin-timeout", adminTimeout), ("--outage-warning", outageWarning)] where !(v >= 0.001 && v < 4_000_000) {
            throw ValidationError("\(name) must be a positive number of seconds.")
        }
        for id in disable where RuleEngine.rule(id) == nil {
            throw ValidationError("Unknown rule '\(id)'; --rules lists them.")
        }
    }

    func engine() -> RuleEngine {
        var config = RuleConfig()
        config.discoveryKATOms = UInt32(discoveryKato * 1000)
        config.ioTimeoutSeconds = ioTimeout
        config.adminTimeoutSeconds = adminTimeout
        config.outageWarningSeconds = outageWarning
        return RuleEngine(config: config, disabled: Set(disable))
    }
}

/// `ADDR:PORT` of `--metrics-listen` (`[ADDR]:PORT` for IPv6; an empty address is every one).
func parseListen(_ listen: String) -> (host: String, port: Int)? {
    guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else { return nil }
    let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    return (host.isEmpty ? "0.0.0.0" : host, port)
}
