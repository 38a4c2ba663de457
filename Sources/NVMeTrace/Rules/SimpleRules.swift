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
            guard let st = c.connectStatus, !st.isSuccess, let resp = c.connectResponseRef else { continue }
            let name = st.name(fabricsCommand: 0x01, opcode: NVMeOpcodes.fabrics)
            var evidence = [Evidence(resp, "Connect response: \(name)", connection: c.id)]
            if let r = c.connectRef { evidence.insert(Evidence(r, "Connect", connection: c.id), at: 0) }
            // Plain locals: the release-mode compiler (6.3.1) crashes on optional chains of the
            // model inside this interpolation.
            let connect = c.connect
            let qid = connect.map { String($0.qid) } ?? "?"
            let kato = connect.map { String($0.kato) } ?? "?"
            let subnqn = c.subnqn ?? "?"
            let hostnqn = c.hostnqn ?? "?"
            let detail = "Connect (qid " + qid + ", KATO " + kato + " ms, subnqn " + subnqn + ", hostnqn " + hostnqn
                + ") completed at frame \(resp.frame) with status \(hexValue(st.code, digits: 3)) \(name)."
            out.findings.append(finding(
                title: "Connect rejected on \(describe(c)): \(name)",
                connection: c.id, ref: resp, detail: detail, evidence: evidence))
        }
        return out
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
                let name = TermReqFES.name(t.fes, fromHost: t.from == .host)
                let type = t.from == .host ? "H2CTermReq" : "C2HTermReq"
                out.findings.append(finding(
                    title: "\(type) from the \(t.from.rawValue) on \(describe(c)): \(name)",
                    connection: c.id, ref: t.ref,
                    detail: "\(type) at frame \(t.ref.frame), FES \(t.fes) (\(name)).",
                    evidence: [Evidence(t.ref, "\(type) FES \(t.fes)", connection: c.id)]))
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
        for c in model.connections where !c.digestErrors.isEmpty {
            let headers = c.headerDigestErrors
            let data = c.digestErrors.total - headers
            let first = c.digestErrors.kept[0]
            let shown = c.digestErrors.kept.prefix(20)
            out.findings.append(finding(
                title: "Digest mismatch on \(describe(c)): \(headers) header, \(data) data",
                connection: c.id, ref: first.ref,
                detail: "first at frame \(first.ref.frame) (\(first.type.name) \(first.header ? "header" : "data") digest)" + (c.digestErrors.total > shown.count ? "; the first \(shown.count) of \(c.digestErrors.total) are cited" : "") + ".",
                evidence: shown.map { Evidence($0.ref, "\($0.type.name) \($0.header ? "HDGST" : "DDGST") mismatch", connection: c.id) }))
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
                    evidence: [Evidence(f.ref, "Keep Alive completion: \(name)", connection: c.id)]))
            }
            if c.failedKeepAlives.notKept > 0 {
                out.findings[out.findings.count - 1].detail += " \(c.failedKeepAlives.total) Keep Alives failed on this connection in all; the first \(c.failedKeepAlives.kept.count) are listed."
            }
        }
        return out
    }
}
