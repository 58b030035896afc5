//! common.reject_status: a reject whose reason names a blocklist, an RBL/DNSBL or spam is
//! FilteredAsSpam, else None (addresses aside: spamela@example.org is no reason). Shared by the
//! Postfix and Exim parsers.

use regex::Regex;

pub struct Spam {
    addr: Regex,
    ascii: Regex,
    unicode: Regex,
}

impl Spam {
    pub fn new() -> Self {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"));
        Spam {
            addr: re(r"<[^>]*>|\S+@\S+"),
            // on ASCII text an ASCII word boundary is the Unicode one, and lets the regex run as a
            // DFA (a Unicode \b makes it simulate the NFA: several times slower)
            ascii: re(concat!(
                r"(?i)spam|blocked using|block ?list|black ?list|dnsbl|dnslist|(?-u:\b)rbl(?-u:\b)|spamcop|barracudacentral",
                r"|sorbs|uceprotect|junk|(?-u:\b)UBE(?-u:\b)|bulk mail|listed (?:at|in|on|by) |realtime blackhole"
            )),
            unicode: re(concat!(
                r"(?i)spam|blocked using|block ?list|black ?list|dnsbl|dnslist|\brbl\b|spamcop|barracudacentral",
                r"|sorbs|uceprotect|junk|\bUBE\b|bulk mail|listed (?:at|in|on|by) |realtime blackhole"
            )),
        }
    }

    /// "FilteredAsSpam" or "None" for a reject reason.
    pub fn status(&self, reason: &str) -> &'static str {
        let plain = self.addr.replace_all(reason, "");
        let spam = if plain.is_ascii() {
            &self.ascii
        } else {
            &self.unicode
        };
        if spam.is_match(&plain) {
            "FilteredAsSpam"
        } else {
            "None"
        }
    }
}
