import EdgeErrors
import EdgeModel
import Foundation
import PlanYAML
import Testing

/// The wire documents' field rules are the plan's: a value `plan check` refuses is refused in a
/// document, by name, on one line; unknown fields are refused, not ignored.
@Suite struct WireDocumentTests {
    /// A one-site plan whose router 1 has `uplink: VALUE` (YAML double-quoted, so any text fits).
    func plan(uplink: String) -> String {
        let escaped = uplink.unicodeScalars.map { $0.value < 0x20 || $0 == "\"" || $0 == "\\" ? String(format: "\\u%04x", $0.value) : String($0) }.joined()
        return """
            name: wire
            ula: fd5e:d9e1:7c2a::/48
            tunnel: fd3b:4f10:a8c6::/64
            relay:
              host: relay.example.net
            sites:
              - name: site-a
                index: 1
                vrrp_id: 51
                routers:
                  - slot: 1
                    priority: 200
                    uplink: "\(escaped)"
            """
    }

    static let interfaces = [
        "auto", "eth0", "enp1s0", "wlan0.100", "52:54:00:12:34:56", "52:54:00:AB:cd:EF",
        "eth0\n[Match]\nName=*", "", "a-very-long-name-0", "eth 0", "eth/0", "..", ".", "52:54:00:12:34", "zz:54:00:12:34:56",
        "ethé", "eth0\t",
    ]

    /// `plan check` and the document decoder accept and refuse the same interface values.
    @Test(arguments: interfaces)
    func interfaceRuleIsThePlans(_ value: String) throws {
        let byPlan = Result { try PlanLoader.parse(plan(uplink: value)) }
        let byRule = FieldRules.interface(value)
        switch (byPlan, byRule) {
        case (.success(let plan), .success(let match)):
            #expect(plan.sites[0].routers[0].uplink == match)
        case (.failure, .failure(let problem)):
            #expect(!problem.message.contains("\n"), "one line: \(problem)")
        default:
            Issue.record("plan check and the wire rule disagree on \(FieldRules.quoted(value)): \(byPlan) vs \(byRule)")
        }
    }

    @Test func hostileRouterIsRefusedByFieldName() throws {
        let json = """
            {"slot":1,"priority":200,"generation":1,"uplink":"eth0\\n[Match]\\nName=*","lan":"auto",
             "tunnel_address":"fd3b:4f10:a8c6::1:1:1","lan_address":"fd5e:d9e1:7c2a:1::2"}
            """
        #expect(documentError { try DocumentCoding.decode(Router.self, from: Data(json.utf8)) } == .init("document.bad-value", "uplink"))
        let badSlot = json.replacingOccurrences(of: "\"slot\":1", with: "\"slot\":99").replacingOccurrences(of: "eth0\\n[Match]\\nName=*", with: "eth0")
        #expect(documentError { try DocumentCoding.decode(Router.self, from: Data(badSlot.utf8)) } == .init("document.bad-value", "slot"))
    }

    @Test func unknownFieldsAreRefusedByName() throws {
        let stamp = #"{"hostname":"site-a","plan":"example","site":"site-a","extra":{"x":1}}"#
        #expect(documentError { try DocumentCoding.decode(SiteStamp.self, from: Data(stamp.utf8)) } == .init("document.unknown-field", "extra"))
        let good = try DocumentCoding.decode(SiteStamp.self, from: Data(#"{"hostname":"site-a","plan":"example","site":"site-a"}"#.utf8))
        #expect(good == SiteStamp(plan: "example", site: "site-a", hostname: "site-a"))
        #expect(String(decoding: try DocumentCoding.encode(good), as: UTF8.self) == #"{"hostname":"site-a","plan":"example","site":"site-a"}"# + "\n")
    }

    @Test func numbersOutOfRangeNameTheFieldAndValue() throws {
        struct Serial: Codable, Equatable {
            var serial: UInt64
            init(from decoder: any Decoder) throws {
                serial = try decoder.container(keyedBy: CodingKeys.self).field(.serial, as: UInt64.self)
            }
        }
        #expect(documentError { try DocumentCoding.decode(Serial.self, from: Data(#"{"serial":-1}"#.utf8)) } == .init("document.wrong-type", "serial"))
        #expect(documentError { try DocumentCoding.decode(Serial.self, from: Data(#"{"serial":"7"}"#.utf8)) } == .init("document.wrong-type", "serial"))
        #expect(documentError { try DocumentCoding.decode(Serial.self, from: Data("serial = 1".utf8)) } == .init("document.not-json", nil))
    }

    @Test func portRangeRuleIsThePlans() throws {
        for text in ["58000-60000", "1-65535", "60000-58000", "0-10", "58000", "a-b", "58000-60000-1", " 5 - 6 "] {
            let yaml = plan(uplink: "auto").replacingOccurrences(of: "relay:", with: "defaults:\n  server_wireguard_ports: \"\(text)\"\nrelay:")
            let byPlan = try? PlanLoader.parse(yaml).defaults.serverWireGuardPorts
            let byRule = try? FieldRules.portRange(text).get()
            #expect(byPlan == byRule, "\(text)")
        }
    }

    /// Hostile sizes and shapes: one short line, no crash, no flood.
    @Test func hostileSizesStayOneShortLine() throws {
        let long = String(repeating: "e", count: 100_000)
        let router = """
            {"slot":1,"priority":200,"generation":1,"uplink":"\(long)","lan":"auto",
             "tunnel_address":"fd3b:4f10:a8c6::1:1:1","lan_address":"fd5e:d9e1:7c2a:1::2"}
            """
        do {
            _ = try DocumentCoding.decode(Router.self, from: Data(router.utf8))
            Issue.record("a 100 000-character uplink was accepted")
        } catch {
            #expect(error.field == "uplink" && "\(error)".count < 300, "\(error)")
        }
        let stamp = #"{"hostname":"a","plan":"example","site":"site-a",""# + long + "\\n\":1}"
        do {
            _ = try DocumentCoding.decode(SiteStamp.self, from: Data(stamp.utf8))
            Issue.record("an unknown 100 000-character key was accepted")
        } catch {
            #expect("\(error)".count < 300 && !"\(error)".contains("\n"), "\(error)")
        }
        let deep = #"{"hostname":"a","plan":"example","site":"site-a","x":"# + String(repeating: "[", count: 100_000)
            + String(repeating: "]", count: 100_000) + "}"
        #expect(throws: DocumentError.self) { try DocumentCoding.decode(SiteStamp.self, from: Data(deep.utf8)) }
    }

    /// The whole-number ranges a document is held to are the plan's: at each bound and one past it,
    /// `plan check` and `FieldRules` agree.
    @Test func numberRangesAreThePlans() throws {
        let cases: [(String, String, ClosedRange<Int>)] = [
            ("slot: 1", "slot", FieldRules.slots), ("priority: 200", "priority", FieldRules.priorities),
            ("vrrp_id: 51", "vrrp_id", FieldRules.vrrpIDs), ("index: 1", "index", FieldRules.siteIndexes),
        ]
        for (line, key, range) in cases {
            for value in [range.lowerBound - 1, range.lowerBound, range.upperBound, range.upperBound + 1] {
                let yaml = plan(uplink: "auto").replacingOccurrences(of: line, with: "\(key): \(value)")
                let byPlan = (try? PlanLoader.parse(yaml)) != nil
                let byRule = (try? FieldRules.integer(value, in: range).get()) != nil
                #expect(byPlan == byRule, "\(key) \(value): plan check \(byPlan), document rule \(byRule)")
            }
        }
        let generation = plan(uplink: "auto").replacingOccurrences(of: "priority: 200", with: "priority: 200\n        generation: 1000001")
        #expect((try? PlanLoader.parse(generation)) == nil && (try? FieldRules.integer(1_000_001, in: FieldRules.generations).get()) == nil)
    }
}

/// What a test matches of a refused document: the code and the field, not the words.
struct CodeAndField: Equatable, CustomStringConvertible {
    var code: ErrorCode
    var field: String?
    init(_ code: ErrorCode, _ field: String?) { self.code = code; self.field = field }
    var description: String { "\(code) on \(field ?? "the whole document")" }
}

/// The code and field of the `DocumentError` that `body` throws; nil when it throws none.
func documentError(_ body: () throws -> Any) -> CodeAndField? {
    do {
        _ = try body()
        return nil
    } catch let error as DocumentError {
        return CodeAndField(error.code, error.input)
    } catch {
        return nil
    }
}
