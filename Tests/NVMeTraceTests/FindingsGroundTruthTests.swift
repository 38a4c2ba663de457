import Foundation
import Testing
@testable import NVMeTrace

/// The findings on each real capture are what its ground truth says an analyzer must find
/// (`ground_truth_labels` in the sample's JSON, from the kernel logs), with the right frames.
@Suite struct FindingsGroundTruthTests {
    struct Label {
        var host: String
        var role: String
        var kato: Int
        var persistentDiscovery: Bool?
        var flagKATO0: Bool
        var keepAlives: Int
        var tornDownByExpiry: Bool
        var flagStoppedThenTeardown: Bool
        var onTimeTeardown: Bool
        var closedBy: String
    }

    static func labels(_ sample: String) throws -> [Label] {
        let url = samplesDirectory.appendingPathComponent(sample + ".json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (root["ground_truth_labels"] as! [[String: Any]]).map {
            Label(host: $0["host"] as! String, role: $0["role"] as! String, kato: $0["connect_kato_ms"] as! Int,
                  persistentDiscovery: $0["persistent_discovery"] as? Bool,
                  flagKATO0: $0["flag_kato0_persistent_discovery"] as! Bool, keepAlives: $0["keep_alives_sent"] as! Int,
                  tornDownByExpiry: $0["torn_down_by_target_keepalive_expiry"] as! Bool,
                  flagStoppedThenTeardown: $0["flag_keepalives_stopped_then_target_teardown"] as! Bool,
                  onTimeTeardown: $0["target_teardown_with_keepalives_on_time"] as! Bool,
                  closedBy: $0["closed_by"] as! String)
        }
    }

    static func report(_ sample: String) -> Report {
        let analysis = CaptureAnalysis()
        analysis.read(paths: [samplePath(sample)])
        return analysis.report()
    }

    @Test(arguments: sampleNames)
    func findingsMatchTheLabels(sample: String) throws {
        let labels = try Self.labels(sample)
        let truth = try GroundTruth(sample: sample)
        let r = Self.report(sample)
        #expect(r.warningsFree, "decode warnings: \(r.decodeWarningSamples)")
        for l in labels {
            let c = try #require(r.model.connections.first { $0.host.description == l.host }, "\(sample): \(l.host)")
            let t = try #require(truth.connections.first { $0.host == l.host })
            #expect(c.end?.by?.rawValue == l.closedBy, "\(sample) \(l.host) closed by")
            #expect(c.keepAlives.count == l.keepAlives)
            // The timeline pairs each Keep Alive with its completion (CapsuleResp counts allow
            // no unanswered Keep Alive in these captures).
            #expect(c.keepAlives.sample.count == l.keepAlives)
            #expect(c.keepAlives.sample.allSatisfy { $0.completion != nil && $0.status?.isSuccess == true })
            #expect(c.keepAlives.sample.allSatisfy { $0.completion!.timeNs >= $0.command.timeNs })
            #expect(Int(c.connect?.kato ?? 999) == l.kato)
            switch l.role {
            case "discovery": #expect(r.kind(c) == "discovery")
            case "io-controller-admin-queue": #expect(r.kind(c) == "admin")
            case "io-queue": #expect(r.kind(c) == "io")
            default: break
            }
            if let p = l.persistentDiscovery { #expect(c.isPersistent == p, "\(sample) \(l.host) persistent") }

            // discovery-kato-zero: exactly on the flagged connections, citing the Connect frame.
            let kz = r.findings("discovery-kato-zero").filter { $0.connection == c.id }
            #expect(kz.count == (l.flagKATO0 ? 1 : 0), "\(sample) \(l.host) discovery-kato-zero")
            if let f = kz.first {
                #expect(f.frames.map(\.frame).contains(t.connects[0].frame))
                #expect(f.ref.frame == t.connects[0].frame)
            }

            // keep-alive-expired: on every connection the target tore down when its keep-alive
            // timer expired (the admin queue's finding names the I/O queues closed with it).
            let ke = r.findings("keep-alive-expired").filter { $0.connections.contains(c.id) }
            #expect(ke.count == (l.tornDownByExpiry ? 1 : 0), "\(sample) \(l.host) keep-alive-expired")
            if let f = ke.first, let closeT = t.closeTime {
                // The teardown evidence is the target's FIN tshark saw first.
                #expect(f.evidence.contains { abs(r.relative($0.ref) - closeT) < 1e-5 && $0.connection == c.id })
            }
            if l.flagStoppedThenTeardown, let f = ke.first {
                // ... and the host's last Keep Alive, as tshark timed it.
                let lastKA = try #require(t.lastKeepAliveTime)
                #expect(f.evidence.contains { abs(r.relative($0.ref) - lastKA) < 1e-5 })
                #expect(f.connection == c.id)
            }
            if l.onTimeTeardown { #expect(ke.isEmpty) }
        }
        // command-timeout: on the I/O queue the host kernel named (queue 0's lines are Keep Alives
        // timed out by KATO, not always on the wire: E), citing the command it timed out (a
        // Linux host's CID is `genctr << 12 | tag`: the tag is the CID's low 12 bits), sent at
        // least the kernel's 30 s I/O timeout before the line was logged.
        for timeout in truth.ioTimeouts {
            let ct = r.findings("command-timeout").filter { f in r.model.connection(f.connection ?? -1)?.qid.map(Int.init) == timeout.qid }
            #expect(ct.count == 1, "\(sample): command-timeout for queue \(timeout.qid)")
            guard let f = ct.first, let sent = f.evidence.first(where: { $0.what.hasSuffix(" sent") }),
                  let m = sent.what.firstMatch(of: /\(CID (\d+)\)/), let cid = Int(m.1) else { continue }
            #expect(cid & 0xFFF == timeout.tag, "\(sample): CID \(cid), kernel tag \(hexValue(timeout.tag))")
            #expect(timeout.t - r.relative(sent.ref) >= 30, "\(sample): sent \(r.relative(sent.ref)) s, timed out \(timeout.t) s")
            #expect(r.findings("commands-lost").contains { $0.connection == f.connection })
        }
        // Captures with nothing to flag produce no error or warning at all.
        if labels.allSatisfy({ !$0.flagKATO0 && !$0.tornDownByExpiry }) && truth.ioTimeouts.isEmpty {
            #expect(r.findings.filter { $0.severity >= .warning }.isEmpty, "\(r.findings.map(\.title))")
        }
    }

    @Test func unfixedHostLoopsAndFixedHostDoesNot() throws {
        let a0 = Self.report("A0-persistent-discovery-kato0-unfixed-host")
        let loop = try #require(a0.findings("reconnect-loop").first)
        // Every connection of A0 is one association of the loop (the ground truth's streams).
        #expect(loop.connections == (try GroundTruth(sample: "A0-persistent-discovery-kato0-unfixed-host")).connections.map(\.stream).sorted())
        #expect(Self.report("A-persistent-discovery-kato0").findings("reconnect-loop").isEmpty)
        // A: the reconnect after the expiry still carried KATO 0 but sends Keep Alives (the fix).
        let a = Self.report("A-persistent-discovery-kato0")
        let first = try #require(a.findings("discovery-kato-zero").first { $0.connection == 0 })
        #expect(first.detail.contains("sends Keep Alive"))
        #expect(first.detail.contains("2e482655019a"))
    }

    @Test func exitCodesFollowFailOn() throws {
        let bad = try runCLI([samplePath("E-keepalive-stall")])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("keep-alive-expired"))
        let healthy = try runCLI([samplePath("B-persistent-discovery-healthy")])
        #expect(healthy.status == 0)
        #expect(healthy.stdout.contains("No findings."))
        let none = try runCLI(["--fail-on", "none", samplePath("E-keepalive-stall")])
        #expect(none.status == 0)
        let usage = try runCLI(["--disable", "no-such-rule", samplePath("E-keepalive-stall")])
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("Unknown rule 'no-such-rule'"))
        // Live capture validates them too: LiveOptionValidationTests.
        let badOption = try runCLI(["--no-such-option", samplePath("E-keepalive-stall")])
        #expect(badOption.status == 2)
        let rules = try runCLI(["--rules"])
        #expect(rules.status == 0)
        for r in RuleEngine.allRules { #expect(rules.stdout.contains(r.id)) }
    }

    /// E's finding cites the host's last Keep Alive and the target's FIN on each connection the
    /// ground truth labels torn down by the expiry: the frames its times give, and their streams.
    static func expectedExpiry() throws -> (frames: [Int], streams: [Int]) {
        let sample = "E-keepalive-stall"
        let truth = try GroundTruth(sample: sample)
        let torn = try labels(sample).filter(\.tornDownByExpiry).map { l in try #require(truth.connections.first { $0.host == l.host }) }
        let admin = try #require(torn.first)
        let frames = try [frameNumber(sample, at: try #require(admin.keepAliveLast))]
            + torn.map { try frameNumber(sample, at: try #require($0.finTargetTime)) }
        return (frames, torn.map(\.stream))
    }

    @Test func jsonReportSchema() throws {
        let sample = "E-keepalive-stall"
        let truth = try GroundTruth(sample: sample)
        let label = try #require(try Self.labels(sample).first { $0.role == "io-controller-admin-queue" })
        let run = try runCLI(["--format", "json", "--fail-on", "none", samplePath(sample)])
        #expect(run.status == 0)
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        #expect(doc["schema"] as? String == "nvmetrace.report/1")
        let capture = try #require(doc["capture"] as? [String: Any])
        #expect(capture["frames"] as? Int == truth.packets)
        #expect(((capture["span"] as? [String: Any])?["seconds"] as? Double).map { abs($0 - truth.duration) < 1e-6 } == true)
        let conns = try #require(doc["connections"] as? [[String: Any]])
        #expect(conns.count == truth.connections.count)
        for c in conns {
            for key in ["id", "src", "dst", "qid", "discovery", "persistent", "persistenceReasons", "kato", "keepAlives",
                        "maxKeepAliveGap", "closedBy", "firstFrame", "lastFrame"] {
                #expect(c.keys.contains(key), "connection lacks \(key)")
            }
        }
        let admin = try #require(conns.first { $0["src"] as? String == label.host })
        let t = try #require(truth.connections.first { $0.host == label.host })
        #expect(admin["kato"] as? Int == label.kato && admin["keepAlives"] as? Int == label.keepAlives)
        #expect(admin["closedBy"] as? String == label.closedBy)
        #expect(abs((admin["maxKeepAliveGap"] as? Double ?? 0) - (t.keepAliveMaxGap ?? -1)) < 0.0005)
        // The keep-alive expiry first (an error), then the outage until the host reconnected.
        let findings = try #require(doc["findings"] as? [[String: Any]])
        #expect(findings.compactMap { $0["rule"] as? String } == ["keep-alive-expired", "outage"])
        let f = findings[0]
        #expect(f["rule"] as? String == "keep-alive-expired" && f["severity"] as? String == "error" && f["connection"] as? Int == admin["id"] as? Int)
        #expect((f["frames"] as? [Int]) == (try Self.expectedExpiry().frames))
        for key in ["title", "time", "detail"] { #expect(f[key] != nil) }
    }

    @Test func markdownReportIsReadyForATicket() throws {
        let sample = "E-keepalive-stall"
        let truth = try GroundTruth(sample: sample)
        let out = temporaryFile("report.md")
        let run = try runCLI(["--format", "markdown", "-o", out.path, samplePath(sample)])
        #expect(run.status == 1)
        #expect(run.stdout.isEmpty)
        let md = try String(contentsOf: out, encoding: .utf8)
        #expect(md.contains(truth.sha256))
        #expect(md.contains("\(truth.fileBytes) bytes"))
        let (frames, streams) = try Self.expectedExpiry()
        #expect(md.contains("`frame.number in {\(frames.map(String.init).joined(separator: ", "))}`"))
        #expect(md.contains("`tcp.stream in {\(streams.map(String.init).joined(separator: ", "))}`"))
        #expect(md.contains("nvmetrace \(NVMeTraceVersion.string)"))
        // Every table row has the header's number of cells.
        for table in md.components(separatedBy: "\n\n") where table.hasPrefix("|") {
            let rows = table.split(separator: "\n")
            let cells = rows.map { $0.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count }
            #expect(Set(cells).count == 1, "ragged table: \(table)")
        }
    }
}

extension Report {
    var warningsFree: Bool { decodeWarnings == 0 && readErrors.isEmpty }
}

extension GroundTruth.Connection {
    /// tshark's last Keep Alive time (seconds since the first packet).
    var lastKeepAliveTime: Double? { keepAliveLast }
}
