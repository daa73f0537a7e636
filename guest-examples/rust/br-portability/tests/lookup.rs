//! Native tests against the sample data sets in `data/`.

use br_portability::lookup::BrPortability;
use strowger_sdk::testing;

fn load() {
    testing::set_dataset_csv("br-ported", include_str!("../data/ported.csv"));
    testing::set_dataset_csv("br-ranges", include_str!("../data/ranges.csv"));
}

#[test]
fn ported_first_then_ranges() {
    load();
    let p = BrPortability::default();
    // ported: exact table wins over the range 1198765 -> 55320
    let r = p.lookup_number("11987654321").unwrap();
    assert_eq!((r.carrier.as_str(), r.ported), ("55321", true));
    assert_eq!(r.routing_number, "5532111987654321");
    assert_eq!(r.number, "11987654321");
    // not ported: longest range prefix
    let r = p.lookup_number("11987650000").unwrap();
    assert_eq!((r.carrier.as_str(), r.ported), ("55320", false));
    assert_eq!(r.routing_number, "5532011987650000");
    let r = p.lookup_number("11991234567").unwrap();
    assert_eq!(r.carrier, "55377");
    let r = p.lookup_number("1133330000").unwrap();
    assert_eq!(r.carrier, "55100");
    // no range at all
    assert_eq!(p.lookup_number("3133334444"), None);
}

#[test]
fn normalisation_of_dialled_forms() {
    load();
    let p = BrPortability::default();
    for dialled in [
        "+55 11 98765-4321",
        "5511987654321",
        "011987654321",
        "01511987654321",
        "(11) 98765-4321",
    ] {
        let r = p
            .lookup_number(dialled)
            .unwrap_or_else(|| panic!("{dialled}"));
        assert_eq!(
            (r.number.as_str(), r.carrier.as_str(), r.ported),
            ("11987654321", "55321", true),
            "{dialled}"
        );
    }
    let r = p.lookup_number("0212133334444").unwrap();
    assert_eq!((r.number.as_str(), r.ported), ("2133334444", true));
    for other in ["190", "1001", "+12125551234", "0800123456", ""] {
        assert_eq!(p.lookup_number(other), None, "{other}");
    }
}

#[test]
fn configuration() {
    testing::set_dataset("ported-x", [("11987654321", "321;VIVO")]);
    testing::set_dataset("ranges-x", [("11", "100")]);
    let p = BrPortability::from_config(
        r#"{"ported_dataset": "ported-x", "ranges_dataset": "ranges-x", "routing_format": "55${RN1}${NUMBER}",
            "normalize": ["^9([0-9]{10,11})$"]}"#,
    )
    .unwrap();
    let r = p.lookup_number("911987654321").unwrap();
    assert_eq!(
        (r.carrier.as_str(), r.routing_number.as_str()),
        ("321", "5532111987654321")
    );
    let r = p.lookup_number("91133334444").unwrap();
    assert_eq!((r.carrier.as_str(), r.ported), ("100", false));
    assert_eq!(p.lookup_number("11987654321"), None); // normaliser wants the 9
    for (json, needle) in [
        (r#"{"normalize": ["("]}"#, "regular expression"),
        (r#"{"normalize": ["^[0-9]+$"]}"#, "group 1"),
        (r#"{"routing_format": "${CSP}"}"#, "CSP"),
        (
            r#"{"ported_dataset": "", "ranges_dataset": ""}"#,
            "at least one",
        ),
        (r#"{"portedset": "x"}"#, "portedset"),
    ] {
        let err = BrPortability::from_config(json)
            .err()
            .unwrap_or_else(|| panic!("accepted {json}"));
        assert!(err.contains(needle), "{json}: {err}");
    }
    let json = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/example-config.json"))
        .unwrap();
    BrPortability::from_config(&json).unwrap();
}
