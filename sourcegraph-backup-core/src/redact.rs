//! Keeping secrets out of every message: repository locations and the errors of object stores
//! and drivers can carry credentials (`s3://AK:SECRET@…`, Azure SAS `?sig=…`, signed URLs,
//! `password=…` in a connection string). Everything shown to a user passes through
//! [`redact_text`]; locations through [`redact_location`].
//!
//! ```
//! use sourcegraph_backup_core::redact::redact_text;
//! let shown = redact_text("GET https://acct.blob.core.windows.net/c/p?sv=1&sig=SECRET failed");
//! assert_eq!(shown, "GET https://acct.blob.core.windows.net/c/p?*** failed");
//! assert_eq!(redact_text("host=db password=hunter2 user=sg"), "host=db password=*** user=sg");
//! ```

/// What replaces a secret.
pub const MASK: &str = "***";

/// Keys whose values are secrets, in `key=value` text and in URL query strings (compared
/// case-insensitively).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "sslpassword",
    "secret",
    "client_secret",
    "token",
    "sas_token",
    "sastoken",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "access_key",
    "access_key_id",
    "secret_access_key",
    "account_key",
    "accountkey",
    "accesskey",
    "sharedaccesskey",
    "sharedaccesssignature",
    "api_key",
    "apikey",
    "credential",
    "credentials",
];

/// A repository location or URL as it may be shown: without userinfo and without a query
/// string, whatever the scheme. Text that is not a URL is returned with
/// [`redact_text`] applied.
pub fn redact_location(location: &str) -> String {
    redact_text(location)
}

/// `text` with every URL's userinfo and query string masked and every `key=value` whose key
/// names a secret masked.
pub fn redact_text(text: &str) -> String {
    mask_secret_pairs(&mask_urls(text))
}

fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}' | ',' | ';')
}

/// Masks userinfo (`user:pass@`) and the query string of every `scheme://` URL in `text`.
fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        let after = &rest[at + 3..];
        let token_end = after.find(ends_token).unwrap_or(after.len());
        let token = &after[..token_end];
        let authority_end = token.find(['/', '?', '#']).unwrap_or(token.len());
        let (authority, path) = token.split_at(authority_end);
        match authority.rfind('@') {
            Some(i) => {
                out.push_str(MASK);
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        match path.find('?') {
            Some(q) => {
                out.push_str(&path[..q]);
                out.push('?');
                out.push_str(MASK);
            }
            None => out.push_str(path),
        }
        rest = &after[token_end..];
    }
    out.push_str(rest);
    out
}

/// Masks the value of every `key=value` whose key is in [`SECRET_KEYS`].
fn mask_secret_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let before = &rest[..eq];
        let key_start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .last()
            .map_or(eq, |(i, _)| i);
        let key = &before[key_start..];
        out.push_str(&rest[..=eq]);
        let after = &rest[eq + 1..];
        if SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) && !after.starts_with(MASK) {
            let value_end = value_end(after);
            if value_end > 0 {
                out.push_str(MASK);
            }
            rest = &after[value_end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Where a `key=value` value ends: a quoted value at its closing quote, else at whitespace,
/// `&`, or a delimiter.
fn value_end(s: &str) -> usize {
    if let Some(quoted) = s.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => return i + 2,
                _ => escaped = false,
            }
        }
        return s.len();
    }
    s.find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ',' | ';' | ')' | '>'))
        .unwrap_or(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_and_query_whatever_the_scheme() {
        for (given, shown) in [
            ("s3://AKIA:SECRETKEY@bucket/p", "s3://***@bucket/p"),
            ("abfs://AK:SECRETKEY@x/p?sig=SECRET", "abfs://***@x/p?***"),
            (
                "azure://acct.blob.core.windows.net/c/p?sig=SECRET",
                "azure://acct.blob.core.windows.net/c/p?***",
            ),
            (
                "postgres://sg:pw@db:5432/sg?sslmode=require",
                "postgres://***@db:5432/sg?***",
            ),
            ("gs://bucket/prefix", "gs://bucket/prefix"),
            ("/var/backups/sg", "/var/backups/sg"),
            ("https://user@host/x#frag", "https://***@host/x#frag"),
        ] {
            assert_eq!(redact_location(given), shown, "{given}");
        }
    }

    #[test]
    fn secrets_inside_messages_are_masked() {
        let msg = "Error performing PUT https://a.blob.core.windows.net/c/x?sv=2&se=2030&sig=S3CRET%3D \
                   (\"https://AK:SK@other/y?X-Amz-Signature=abc\"): AccessKey=abc123 failed";
        let shown = redact_text(msg);
        for secret in ["S3CRET", "SK@", "abc123", "X-Amz-Signature=abc"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("https://a.blob.core.windows.net/c/x?***"),
            "{shown}"
        );
        assert_eq!(
            redact_text(r"host=h password='it\'s secret' sslpassword=k"),
            "host=h password=*** sslpassword=***"
        );
        assert_eq!(redact_text("a=b c=d"), "a=b c=d");
        assert_eq!(redact_text("'password=x' found"), "'password=***' found");
        assert_eq!(redact_text("password="), "password=");
    }
}
