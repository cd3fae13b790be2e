//! Field values for generated events: real-looking personal data that passes each
//! format's own check (Luhn, mod 97, SSA allocation rules, HMRC prefixes), look-alikes
//! that do not (hard negatives), and the harmless identifiers around them.
//!
//! Every identifier in clean fields is lower-case letters plus at most four digits in a
//! row, so no detector can find personal data where none was put.

use rand::seq::IndexedRandom;
use rand::Rng;

/// `n` random lower-case letters.
pub(super) fn letters(rng: &mut impl Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `n` random decimal digits.
fn digits(rng: &mut impl Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.random_range(0..10u8)).collect()
}

fn to_text(ds: &[u8]) -> String {
    ds.iter().map(|d| char::from(b'0' + d)).collect()
}

fn pick<'a>(rng: &mut impl Rng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Personal data

/// The Luhn check digit for `payload` (ISO/IEC 7812-1 annex B): appended, the whole
/// number passes Luhn.
pub(super) fn luhn_check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            // Doubling starts at the rightmost payload digit (the check digit is not
            // there yet).
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A payment card number that passes Luhn, from a real network's number range (Visa,
/// Mastercard, American Express, Discover), written compact, in groups of four (Amex:
/// 4-6-5) joined by spaces, or by dashes.
pub(super) fn card_number(rng: &mut impl Rng) -> String {
    let (mut pan, len, groups): (Vec<u8>, usize, &[usize]) = match rng.random_range(0..4) {
        0 => (vec![4], 16, &[4, 4, 4, 4]),
        1 => (vec![5, rng.random_range(1..=5)], 16, &[4, 4, 4, 4]),
        2 => (
            vec![3, if rng.random_bool(0.5) { 4 } else { 7 }],
            15,
            &[4, 6, 5],
        ),
        _ => (vec![6, 0, 1, 1], 16, &[4, 4, 4, 4]),
    };
    let payload = len - 1 - pan.len();
    pan.extend(digits(rng, payload));
    pan.push(luhn_check_digit(&pan));
    let sep = *["", " ", "-"].choose(rng).unwrap_or(&"");
    let mut out = String::new();
    let mut at = 0;
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&to_text(&pan[at..at + g]));
        at += g;
    }
    out
}

/// An e-mail address on a reserved example domain (RFC 2606), in the shapes people use:
/// `first.last`, `flast`, `first_last` with digits, `first+tag`.
pub(super) fn email(rng: &mut impl Rng) -> String {
    const FIRST: &[&str] = &[
        "jane", "john", "amira", "li", "oskar", "maria", "sven", "chloe", "raj", "yuki",
    ];
    const LAST: &[&str] = &[
        "doe", "smith", "haddad", "wei", "nilsson", "garcia", "berg", "martin", "patel", "sato",
    ];
    const DOMAINS: &[&str] = &[
        "example.com",
        "example.org",
        "mail.example.net",
        "example.co.uk",
    ];
    let (first, last) = (pick(rng, FIRST), pick(rng, LAST));
    let local = match rng.random_range(0..4) {
        0 => format!("{first}.{last}"),
        1 => format!("{}{last}", &first[..1]),
        2 => format!("{first}_{last}{}", rng.random_range(1..100)),
        _ => format!("{first}+orders"),
    };
    format!("{local}@{}", pick(rng, DOMAINS))
}

/// Countries and BBAN shapes (`d` digit, `L` upper-case letter) from the SWIFT IBAN
/// registry.
const IBAN_FORMATS: &[(&str, &str)] = &[
    ("DE", "dddddddddddddddddd"),
    ("GB", "LLLLdddddddddddddd"),
    ("FR", "ddddddddddddddddddddddd"),
    ("NL", "LLLLdddddddddd"),
    ("ES", "dddddddddddddddddddd"),
];

/// An IBAN with valid check digits (ISO 13616 mod 97), compact or printed in groups of
/// four.
pub(super) fn iban(rng: &mut impl Rng) -> String {
    let (country, shape) = *IBAN_FORMATS.choose(rng).unwrap_or(&IBAN_FORMATS[0]);
    let bban: String = shape
        .bytes()
        .map(|c| match c {
            b'L' => char::from(rng.random_range(b'A'..=b'Z')),
            _ => char::from(rng.random_range(b'0'..=b'9')),
        })
        .collect();
    let compact = format!("{country}{:02}{bban}", iban_check_digits(country, &bban));
    if rng.random_bool(0.5) {
        compact
    } else {
        let chars: Vec<char> = compact.chars().collect();
        chars
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// ISO 13616: 98 minus (BBAN, country, `00` with letters as 10–35) mod 97.
pub(super) fn iban_check_digits(country: &str, bban: &str) -> u32 {
    let rem = bban
        .bytes()
        .chain(country.bytes())
        .chain(*b"00")
        .fold(0u32, |rem, c| {
            if c.is_ascii_digit() {
                (rem * 10 + u32::from(c - b'0')) % 97
            } else {
                (rem * 100 + u32::from(c - b'A') + 10) % 97
            }
        });
    98 - rem
}

/// A US social security number `AAA-GG-SSSS` in the ranges the SSA issues: area 001–899
/// except 666, group 01–99, serial 0001–9999.
pub(super) fn ssn(rng: &mut impl Rng) -> String {
    let area = loop {
        let a = rng.random_range(1..=899);
        if a != 666 {
            break a;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.random_range(1..=99),
        rng.random_range(1..=9999)
    )
}

/// A UK national insurance number with an allocatable prefix (HMRC: first letter not
/// D F I Q U V, second not D F I O Q U V, not BG GB KN NK NT TN ZZ), compact or spaced.
pub(super) fn nino(rng: &mut impl Rng) -> String {
    const FIRST: &[u8] = b"ABCEGHJKLMNOPRSTWXYZ";
    const SECOND: &[u8] = b"ABCEGHJKLMNPRSTWXYZ";
    const NEVER: &[&[u8; 2]] = &[b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"];
    let prefix = loop {
        let p = [
            FIRST[rng.random_range(0..FIRST.len())],
            SECOND[rng.random_range(0..SECOND.len())],
        ];
        if !NEVER.contains(&&p) {
            break p;
        }
    };
    let prefix: String = prefix.iter().map(|&c| char::from(c)).collect();
    let n = to_text(&digits(rng, 6));
    let suffix = char::from(rng.random_range(b'A'..=b'D'));
    if rng.random_bool(0.5) {
        format!("{prefix}{n}{suffix}")
    } else {
        format!("{prefix} {} {} {} {suffix}", &n[..2], &n[2..4], &n[4..])
    }
}

// ---------------------------------------------------------------------------------------
// Hard negatives

/// A 16-digit order number that fails Luhn: what a digit-run regex takes for a card.
pub(super) fn order_number(rng: &mut impl Rng) -> String {
    let mut n = vec![rng.random_range(2..=9u8)];
    n.extend(digits(rng, 14));
    let valid = luhn_check_digit(&n);
    // Any other last digit fails Luhn.
    n.push((valid + rng.random_range(1..=9u8)) % 10);
    to_text(&n)
}

/// A timestamp in epoch milliseconds, 13 digits: `ms` when it is in 2001–2033 (where
/// epoch milliseconds have 13 digits and start with 1), else moved into that range.
pub(super) fn epoch_millis(ms: i64) -> i64 {
    const LOW: i64 = 1_000_000_000_000;
    if (LOW..2 * LOW).contains(&ms) {
        ms
    } else {
        LOW + ms.rem_euclid(LOW)
    }
}

/// A USPS Intelligent Mail package barcode number: 22 digits starting `9400`, too long
/// for a card number.
pub(super) fn tracking_number(rng: &mut impl Rng) -> String {
    format!("9400{}", to_text(&digits(rng, 18)))
}

/// Something with an `@` that is not an address anyone outside can mail: no domain, a
/// single-label host, or an IP literal without brackets.
pub(super) fn local_address(rng: &mut impl Rng) -> String {
    pick(
        rng,
        &[
            "user@localhost",
            "root@build-07",
            "deploy@ci-runner",
            "ops@10.0.0.12",
            "noreply@mailhost",
        ],
    )
    .to_string()
}

/// A phone number in a range reserved for fiction (US 555-01xx, UK Ofcom 020 7946 0xxx).
pub(super) fn phone_number(rng: &mut impl Rng) -> String {
    if rng.random_bool(0.5) {
        format!(
            "+1 {}-555-01{:02}",
            rng.random_range(201..=989),
            rng.random_range(0..100)
        )
    } else {
        format!("+44 20 7946 0{:03}", rng.random_range(0..1000))
    }
}
