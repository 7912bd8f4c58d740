//! The file name of a `Content-Disposition` header, as the Drupal raw upload
//! design reads it: a quoted `filename="..."` parameter is required; the
//! extended `filename*` form alone is refused; the disposition type is not
//! checked. Paths are removed later, by [`FileName`](crate::FileName).

use crate::error::Error;

/// The `filename` parameter of a `Content-Disposition` value.
pub(crate) fn filename(value: &str) -> Result<String, Error> {
    let params = parameters(value)?;
    if let Some((_, v)) = params.iter().find(|(k, _)| k == "filename") {
        let name = unquote(v).ok_or_else(|| {
            Error::invalid_request(
                "Content-Disposition: the file name must be quoted: filename=\"NAME\"",
            )
        })?;
        if name.is_empty() {
            return Err(Error::invalid_request(
                "Content-Disposition: the file name is empty",
            ));
        }
        return Ok(name);
    }
    if params.iter().any(|(k, _)| k == "filename*") {
        return Err(Error::invalid_request(
            "Content-Disposition: the extended filename* form is not supported; send filename=\"NAME\"",
        ));
    }
    Err(Error::invalid_request(
        "Content-Disposition: no file name; send filename=\"NAME\"",
    ))
}

/// The `name=value` parameters after the disposition type, names
/// lowercased, values raw (quoted strings keep their quotes). Semicolons
/// inside quoted strings do not split.
fn parameters(value: &str) -> Result<Vec<(String, String)>, Error> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                pieces.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(Error::invalid_request(
            "Content-Disposition: an unterminated quoted string",
        ));
    }
    pieces.push(&value[start..]);
    Ok(pieces
        .into_iter()
        .skip(1)
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect())
}

/// The content of a quoted string, with `\x` escapes resolved.
fn unquote(v: &str) -> Option<String> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_file_names_only() {
        assert_eq!(filename("file; filename=\"cat.jpg\"").unwrap(), "cat.jpg");
        assert_eq!(
            filename("attachment; FILENAME=\"a; b.txt\"").unwrap(),
            "a; b.txt"
        );
        assert_eq!(
            filename("file; filename=\"say \\\"hi\\\".txt\"").unwrap(),
            "say \"hi\".txt"
        );
        assert_eq!(
            filename("inline; filename=\"a.jpg\"; filename*=UTF-8''a.jpg").unwrap(),
            "a.jpg"
        );
        assert_eq!(
            filename("file; filename=\"../../x/cat.jpg\"").unwrap(),
            "../../x/cat.jpg"
        );
        for bad in [
            "file",
            "file; filename=cat.jpg",
            "file; filename=\"\"",
            "file; filename*=UTF-8''cat.jpg",
            "file; filename*=\"cat.jpg\"",
            "file; filename=\"open",
        ] {
            assert!(filename(bad).is_err(), "{bad:?}");
        }
    }
}
