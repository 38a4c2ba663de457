/// A Connect completed with an error status.
struct ConnectRejectedRule: Rule {
    let id = "connect-rejected"
    let severity = Severity.error
    let summary = "Connect completed with an error status"
    let explanation = """
        NVMe over Fabrics §3.3: a Connect that fails creates no queue (and for the admin queue, no \
        controller). Command-specific statuses name the reason: Connect Invalid Parameters (bad \
        qid, sqsize, KATO, cntlid), Connect Invalid Host (host NQN not allowed), Controller Busy, \
        Authentication Required.
        """
    let fix = "Check the status against the target's configuration (allowed hosts, subsystem NQN, queue size, authentication)."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for c in model.connections {
            if c.connectRef != nil, c.connectStatus == nil, c.connectResponseRef != nil || Self.missedBytes(c) {
                let why = c.connectResponseRef.map { "the snap length cut the Connect response (frame \($0.frame)) before its status" }
                    ?? "the Connect's response is not in the capture, which missed bytes of this connection"
                out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: why))
                continue
            }
            guard let st = c.connectStatus, !st.isSuccess, let resp = c.connectResponseRef else { continue }
            let name = st.name(fabricsCommand: 0x01, opcode: NVMeOpcodes.fabrics)
            var evidence = [Evidence(resp, "Connect response: \(name)", connection: c.id)]
            if let r = c.connectRef { evidence.insert(Evidence(r, "Connect", connection: c.id), at: 0) }
            // Plain locals: the release-mode compiler (6.3.1) crashes on optional chains of the
            // model inside this interpolation.
            let connect = c.connect
            let qid = connect?.qid.map { String($0) } ?? "?"
            let kato = connect?.kato.map { String($0) } ?? "?"
            let subnqn = c.subnqn ?? "?"
            let hostnqn = c.hostnqn ?? "?"
            let detail = "Connect (qid " + qid + ", KATO " + kato + " ms, subnqn " + subnqn + ", hostnqn " + hostnqn
                + ") completed at frame \(resp.frame) with status \(hexValue(st.code, digits: 3)) \(name)."
            out.findings.append(finding(
                title: "Connect rejected on \(describe(c)): \(name)",
                connection: c.id, ref: resp, detail: detail, evidence: evidence,
                basis: [.observed("Connect response CQE status (frame \(resp.frame))")]))
        }
        return out
    }

    /// The capture missed bytes of the connection (cut, lost or not framed): a PDU may be among them.
    static func missedBytes(_ c: ConnectionModel) -> Bool {
        c.capture.notCapturedBytes > 0 || c.capture.lostBytes > 0 || c.capture.unframedBytes > 0 || c.capture.partialHeaders > 0
    }
}

/// An H2CTermReq or C2HTermReq: one side declared a fatal transport error.
struct TerminationRequestRule: Rule {
    let id = "termination-request"
    let severity = Severity.error
    let summary = "H2C/C2H Termination Request (fatal transport error)"
    let explanation = """
        NVMe/TCP Transport §3.6.2.4: a TermReq reports a fatal error in a PDU the sender received \
        (FES: invalid header field, PDU sequence error, header digest error, data out of range, R2T \
        or data limit exceeded, unsupported parameter) and is followed by closing the connection.
        """
    let fix = "Look at the PDU the FES points to (its header is carried in the TermReq) and at both sides' logs."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for c in model.connections {
            for t in c.termReqs.kept {
                let type = t.from == .host ? "H2CTermReq" : "C2HTermReq"
                // The FES is unknown when the snap length cut the TermReq's header before it.
                let name = t.fes.map { TermReqFES.name($0, fromHost: t.from == .host) } ?? "FES not captured"
                let fes = t.fes.map { "FES \($0)" } ?? "FES not captured"
                out.findings.append(finding(
                    title: "\(type) from the \(t.from.rawValue) on \(describe(c)): \(name)",
                    connection: c.id, ref: t.ref,
                    detail: "\(type) at frame \(t.ref.frame), \(fes)\(t.fes != nil ? " (\(name))" : "").",
                    evidence: [Evidence(t.ref, "\(type) \(fes)", connection: c.id)],
                    basis: [.observed("\(type) PDU header (frame \(t.ref.frame))")]))
            }
            if c.termReqs.notKept > 0 {
                out.findings[out.findings.count - 1].detail += " \(c.termReqs.total) termination requests on this connection in all; the first \(c.termReqs.kept.count) are listed."
            }
        }
        return out
    }
}

/// Header (or, when verified, data) digests that do not match.
struct DigestErrorRule: Rule {
    let id = "digest-error"
    let severity = Severity.error
    let summary = "Header or data digest (CRC32C) mismatch"
    let explanation = """
        NVMe/TCP Transport §3.6.2.7: a digest mismatch means the PDU was corrupted between its \
        sender's digest computation and the capture point; a receiver must treat a header digest \
        error as fatal (C2H/H2CTermReq with FES 3) and a data digest error as a failed command.
        """
    let fix = "Suspect NIC offloads, memory or the path between sender and capture point; compare with a capture taken at the other end."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for c in model.connections {
            let unchecked = c.capture.unverifiableHeaderDigests
            guard !c.digestErrors.isEmpty else {
                if unchecked > 0 {
                    out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: "\(unchecked) header digest\(unchecked == 1 ? "" : "s") could not be checked: the snap length cut the header or its digest"))
                }
                continue
            }
            let headers = c.headerDigestErrors
            let data = c.digestErrors.total - headers
            let first = c.digestErrors.kept[0]
            let shown = c.digestErrors.kept.prefix(20)
            out.findings.append(finding(
                title: "Digest mismatch on \(describe(c)): \(headers) header, \(data) data",
                connection: c.id, ref: first.ref,
                detail: "first at frame \(first.ref.frame) (\(first.type.name) \(first.header ? "header" : "data") digest)" + (c.digestErrors.total > shown.count ? "; the first \(shown.count) of \(c.digestErrors.total) are cited" : "")
                    + (unchecked > 0 ? "; \(unchecked) more header digests could not be checked (cut by the snap length)" : "") + ".",
                evidence: shown.map { Evidence($0.ref, "\($0.type.name) \($0.header ? "HDGST" : "DDGST") mismatch", connection: c.id) },
                basis: [.observed("CRC32C of the captured PDU bytes against the digest they carry")]))
        }
        return out
    }
}

/// A Keep Alive completed with an error status.
struct KeepAliveFailedRule: Rule {
    let id = "keep-alive-failed"
    let severity = Severity.error
    let summary = "Keep Alive completed with an error status"
    let explanation = """
        NVMe Base 2.1 §5.2.12: Keep Alive has no failure modes in normal operation; an error status \
        (e.g. Keep Alive Timer Expired, or Command Sequence Error from a controller being torn \
        down) means the controller no longer considers the association healthy.
        """
    let fix = "Check the target's log at that time; expect the association to be reset."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for c in model.connections {
            for f in c.failedKeepAlives.kept {
                let name = f.status.name()
                out.findings.append(finding(
                    title: "Keep Alive failed on \(describe(c)): \(name)",
                    connection: c.id, ref: f.ref,
                    detail: "Keep Alive completion at frame \(f.ref.frame) with status \(hexValue(f.status.code, digits: 3)) \(name).",
                    evidence: [Evidence(f.ref, "Keep Alive completion: \(name)", connection: c.id)],
                    basis: [.observed("Keep Alive completion CQE status (frame \(f.ref.frame))")]))
            }
            // Keep Alives whose outcome the capture does not show: completions cut before their
            // status, or not captured at all where the capture missed bytes.
            let cut = c.keepAlives.statusNotCaptured
            let unseen = ConnectRejectedRule.missedBytes(c) ? max(0, c.keepAlives.count - c.keepAlives.completed) : 0
            if c.failedKeepAlives.isEmpty && cut + unseen > 0 {
                var parts: [String] = []
                if cut > 0 { parts.append("\(cut) Keep Alive completion\(cut == 1 ? "" : "s") cut by the snap length before the status") }
                if unseen > 0 { parts.append("\(unseen) Keep Alive\(unseen == 1 ? "" : "s") without a completion in the capture, which missed bytes of this connection") }
                out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: parts.joined(separator: "; ")))
            }
            if c.failedKeepAlives.notKept > 0 {
                out.findings[out.findings.count - 1].detail += " \(c.failedKeepAlives.total) Keep Alives failed on this connection in all; the first \(c.failedKeepAlives.kept.count) are listed."
            }
        }
        return out
    }
}
