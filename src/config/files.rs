//! Secret-bearing fields given inline (`<field>`) or as a file (`<field>_file`, e.g. a
//! Kubernetes secret mount). Errors name the field and the file, never the value.

use super::FieldError;
use crate::secret::Secret;

/// Resolves `<field>` / `<field>_file` at `path`: at most one may be given; a file loses one
/// trailing newline (`\n` or `\r\n`). `Ok(None)` when neither is given.
pub fn resolve(
    inline: Option<&Secret>,
    file: Option<&str>,
    path: &str,
    field: &str,
) -> Result<Option<Secret>, FieldError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(FieldError::new(
            format!("{path}.{field}"),
            format!("give either {field} or {field}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f).map_err(|e| {
                FieldError::new(
                    format!("{path}.{field}_file"),
                    format!("cannot read {f}: {e}"),
                )
            })?;
            let text = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            Ok(Some(Secret::new(text.to_string())))
        }
        (None, None) => Ok(None),
    }
}
