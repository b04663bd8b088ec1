//! PostgreSQL's `hash_bytes_extended` (Bob Jenkins' lookup3, as in
//! `src/common/hashfn.c`), the hash behind `hashtextextended(text, seed)`
//! for a deterministic collation. Row hashes use it because PostgreSQL
//! computes it about 2.6 times faster than md5 in SQL, and the Rust and
//! SQLite sides must produce exactly the same 64 bits.
//!
//! PostgreSQL reads the key as little-endian 32-bit words on the machines it
//! runs on here (x86-64, arm64); so does this.

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

fn word(k: &[u8]) -> u32 {
    u32::from_le_bytes([k[0], k[1], k[2], k[3]])
}

/// `hash_bytes_extended(k, len, seed)`: what `hashtextextended(t, seed)`
/// returns (as a bigint) for a text whose UTF-8 bytes are `k`.
pub fn hash_bytes_extended(k: &[u8], seed: u64) -> u64 {
    // A key longer than 4 GiB wraps its length like PostgreSQL's uint32.
    let start = 0x9e37_79b9u32
        .wrapping_add(k.len() as u32)
        .wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (start, start, start);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    let mut k = k;
    while k.len() >= 12 {
        a = a.wrapping_add(word(k));
        b = b.wrapping_add(word(&k[4..]));
        c = c.wrapping_add(word(&k[8..]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    // The last 0 to 11 bytes; the lowest byte of c stays free (lookup3
    // reserves it for the length).
    let byte = |i: usize, shift: u32| u32::from(k[i]) << shift;
    let n = k.len();
    if n >= 9 {
        for i in 8..n {
            c = c.wrapping_add(byte(i, 8 * (i as u32 - 7)));
        }
    }
    if n >= 8 {
        b = b.wrapping_add(word(&k[4..]));
        a = a.wrapping_add(word(k));
    } else if n >= 4 {
        for i in 4..n {
            b = b.wrapping_add(byte(i, 8 * (i as u32 - 4)));
        }
        a = a.wrapping_add(word(k));
    } else {
        for i in 0..n {
            a = a.wrapping_add(byte(i, 8 * i as u32));
        }
    }
    finish(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From PostgreSQL 15: `SELECT hashtextextended(s, 0)`.
    #[test]
    fn agrees_with_postgresql() {
        for (text, want) in [
            ("", -6939563903564495251i64),
            ("a", 3591986179850072241),
            ("N", 5292035099250578507),
            ("abcdefghijkl", -7556637188122330412),
            ("abcdefghijklm", 8871624171452417744),
            ("3:1232:-5N", 5896369653037103618),
            ("naïve ☃ 😀", -4793479312713684063),
        ] {
            assert_eq!(
                hash_bytes_extended(text.as_bytes(), 0) as i64,
                want,
                "{text:?}"
            );
        }
    }
}
