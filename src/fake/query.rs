//! Query-string parsing shared by the fakes (percent-decoding included, so
//! `addedAt%3E%3E=1` and `addedAt>>=1` read the same, as on real servers).

pub fn split(url: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect();
    (decode(path), pairs)
}

pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' if at + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[at + 1..at + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        at += 3;
                    }
                    None => {
                        out.push(b'%');
                        at += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_encoded_operators_agree() {
        let (path, raw) = split("/library/sections/1/all?type=1&addedAt>>=1700");
        let (_, encoded) = split("/library/sections/1/all?type=1&addedAt%3E%3E=1700");
        assert_eq!(path, "/library/sections/1/all");
        assert_eq!(raw, encoded);
        assert_eq!(raw[1], ("addedAt>>".to_string(), "1700".to_string()));
        assert_eq!(decode("a%2"), "a%2");
    }
}
