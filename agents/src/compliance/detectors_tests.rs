//! Detector tables: for each kind, named texts and exactly what must be found in them.

use proptest::prelude::*;

use super::*;

struct Case {
    name: &'static str,
    text: &'static str,
    found: &'static [&'static str],
}

const fn case(name: &'static str, text: &'static str, found: &'static [&'static str]) -> Case {
    Case { name, text, found }
}

/// Runs only `kind`'s detector over each case and compares the matched texts.
fn check(kind: PiiKind, cases: &[Case]) {
    for c in cases {
        let got: Vec<&str> = scan(c.text, KindSet::EMPTY.with(kind))
            .into_iter()
            .map(|m| {
                assert_eq!(m.kind, kind, "case `{}`", c.name);
                &c.text[m.span]
            })
            .collect();
        assert_eq!(got, c.found, "{} case `{}`", kind.as_str(), c.name);
    }
}

#[test]
fn card_numbers() {
    check(
        PiiKind::CardNumber,
        &[
            case("visa 16 compact", "4111111111111111", &["4111111111111111"]),
            case("visa 13", "4222222222222", &["4222222222222"]),
            case("amex 15", "378282246310005", &["378282246310005"]),
            case("19 digits", "6011000000000000001", &["6011000000000000001"]),
            case("spaces", "5555 5555 5555 4444", &["5555 5555 5555 4444"]),
            case("dashes", "4111-1111-1111-1111", &["4111-1111-1111-1111"]),
            case(
                "mixed separators",
                "4111-1111 1111-1111",
                &["4111-1111 1111-1111"],
            ),
            case(
                "embedded in text",
                "paid with 4111111111111111, thanks",
                &["4111111111111111"],
            ),
            case(
                "after letters",
                "card:4111111111111111x",
                &["4111111111111111"],
            ),
            case(
                "followed by an expiry",
                "4111 1111 1111 1111 12 25",
                &["4111 1111 1111 1111"],
            ),
            case(
                "two cards",
                "4111111111111111 / 5555-5555-5555-4444",
                &["4111111111111111", "5555-5555-5555-4444"],
            ),
            case("bad luhn", "4111111111111112", &[]),
            case("12 digits", "411111111117", &[]),
            case("20 digits around a valid card", "41111111111111110000", &[]),
            case("digit glued before", "04111111111111111", &[]),
            case("all same digit (13, luhn-valid)", "6666666666666", &[]),
            case(
                "all same digit (16, luhn-valid)",
                "8888 8888 8888 8888",
                &[],
            ),
            case("leading 0", "0000000000000", &[]),
            case("epoch milliseconds (luhn-valid)", "1800000000002", &[]),
            case("double separator splits", "4111  1111 1111 1111", &[]),
            case("dot is not a separator", "4111.1111.1111.1111", &[]),
            case("empty", "", &[]),
        ],
    );
}

#[test]
fn emails() {
    check(
        PiiKind::Email,
        &[
            case("plain", "jane.doe@example.com", &["jane.doe@example.com"]),
            case(
                "in angle brackets with subdomains",
                "to: <jane+tag@mail.example.co.uk>",
                &["jane+tag@mail.example.co.uk"],
            ),
            case("sentence end", "write to a@b.io.", &["a@b.io"]),
            case("upper case", "UPPER@EXAMPLE.ORG", &["UPPER@EXAMPLE.ORG"]),
            case(
                "hyphenated domain",
                "x@my-shop.example",
                &["x@my-shop.example"],
            ),
            case("two addresses", "a@x.com, b@y.org", &["a@x.com", "b@y.org"]),
            case("no dot in domain", "jane@localhost", &[]),
            case("one-letter tld", "jane@example.c", &[]),
            case("numeric tld", "jane@10.0.0.1", &[]),
            case("empty local part", "@example.com", &[]),
            case("dot before @", "jane.@example.com", &[]),
            case("double dot", "ja..ne@example.com", &[]),
            case("label starts with hyphen", "jane@-example.com", &[]),
            case("label ends with hyphen", "jane@example-.com", &[]),
            case("empty label", "jane@example..com", &[]),
            case("lone @", "a @ b.com", &[]),
            case("non-ascii around", "é@ü.de", &[]),
        ],
    );
}

#[test]
fn ibans() {
    check(
        PiiKind::Iban,
        &[
            case(
                "DE compact",
                "DE89370400440532013000",
                &["DE89370400440532013000"],
            ),
            case(
                "GB grouped",
                "GB82 WEST 1234 5698 7654 32",
                &["GB82 WEST 1234 5698 7654 32"],
            ),
            case(
                "FR grouped with a letter",
                "FR14 2004 1010 0505 0001 3M02 606",
                &["FR14 2004 1010 0505 0001 3M02 606"],
            ),
            case("NL compact", "NL91ABNA0417164300", &["NL91ABNA0417164300"]),
            case(
                "BE 16, groups end exactly",
                "BE71 0961 2345 6769",
                &["BE71 0961 2345 6769"],
            ),
            case("CH 21", "CH9300762011623852957", &["CH9300762011623852957"]),
            case(
                "NO 15, the shortest",
                "NO9386011117947",
                &["NO9386011117947"],
            ),
            case(
                "in text",
                "IBAN: DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX",
                &["DE89 3704 0044 0532 0130 00"],
            ),
            case("bad checksum", "DE89370400440532013001", &[]),
            case("one short", "DE8937040044053201300", &[]),
            case("one long", "DE893704004405320130000", &[]),
            case("unknown country", "XX89370400440532013000", &[]),
            case("lower-case country", "de89370400440532013000", &[]),
            case("inside a word", "XDE89370400440532013000", &[]),
            case("bad grouping", "DE89 37040044 0532 0130 00", &[]),
            case("double space", "DE89  3704 0044 0532 0130 00", &[]),
        ],
    );
}

#[test]
fn us_ssns() {
    check(
        PiiKind::UsSsn,
        &[
            case("plain", "123-45-6789", &["123-45-6789"]),
            case("in text", "SSN:078-05-1120.", &["078-05-1120"]),
            case("area 000", "000-12-3456", &[]),
            case("area 666", "666-12-3456", &[]),
            case("area 9xx", "900-12-3456", &[]),
            case("area 999", "999-99-9999", &[]),
            case("group 00", "123-00-4567", &[]),
            case("serial 0000", "123-45-0000", &[]),
            case("bare nine digits", "123456789", &[]),
            case("longer number before", "1123-45-6789", &[]),
            case("longer number after", "123-45-67890", &[]),
            case("dash-joined before", "1-123-45-6789", &[]),
            case("dash-joined after", "123-45-6789-1", &[]),
            case("wrong shape", "12-345-6789", &[]),
        ],
    );
}

#[test]
fn uk_ninos() {
    check(
        PiiKind::UkNino,
        &[
            case("compact", "AB123456C", &["AB123456C"]),
            case("spaced", "AB 12 34 56 C", &["AB 12 34 56 C"]),
            case("in text", "nino: JG103759A.", &["JG103759A"]),
            case("O allowed first", "OA123456D", &["OA123456D"]),
            case("D first", "DA123456A", &[]),
            case("F first", "FA123456A", &[]),
            case("I first", "IA123456A", &[]),
            case("Q first", "QQ123456C", &[]),
            case("U first", "UA123456A", &[]),
            case("V first", "VA123456A", &[]),
            case("O second", "AO123456A", &[]),
            case("D second", "AD123456A", &[]),
            case("prefix BG", "BG123456A", &[]),
            case("prefix GB", "GB123456A", &[]),
            case("prefix KN", "KN123456A", &[]),
            case("prefix NK", "NK123456A", &[]),
            case("prefix NT", "NT123456A", &[]),
            case("prefix TN", "TN123456A", &[]),
            case("prefix ZZ", "ZZ123456A", &[]),
            case("suffix E", "AB123456E", &[]),
            case("five digits", "AB12345C", &[]),
            case("inside a word", "XAB123456C", &[]),
            case("followed by a letter", "AB123456CD", &[]),
            case("lower case", "ab123456c", &[]),
        ],
    );
}

#[test]
fn kinds_round_trip_their_names() {
    for kind in PiiKind::ALL {
        assert_eq!(PiiKind::from_name(kind.as_str()), Some(kind));
        assert!(KindSet::all().contains(kind));
        assert!(!KindSet::EMPTY.contains(kind));
    }
    assert_eq!(PiiKind::from_name("phone"), None);
}

#[test]
fn an_iban_is_not_also_a_card() {
    let got: Vec<PiiKind> = scan("NO9386011117947", KindSet::all())
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(got, vec![PiiKind::Iban]);
}

/// Text made of what detectors look at, with real matches mixed in.
fn detector_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[0-9A-Za-z@. \\-]{0,12}",
        Just("4111 1111 1111 1111".to_string()),
        Just("jane@example.com".to_string()),
        Just("DE89370400440532013000".to_string()),
        Just("123-45-6789".to_string()),
        Just("AB 12 34 56 C".to_string()),
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn scanning_never_panics_and_spans_are_in_bounds(text in detector_text()) {
        for m in scan(&text, KindSet::all()) {
            prop_assert!(m.span.start < m.span.end && m.span.end <= text.len());
            prop_assert!(text.get(m.span.clone()).is_some(), "span on a char boundary");
        }
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in any::<String>()) {
        let _ = scan(&text, KindSet::all());
    }
}
