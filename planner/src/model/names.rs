//! Identifiers and column references as written in a pipeline, and as SQL.

/// ANSI identifier quoting, understood by PostgreSQL and SQLite.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !s.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// A source column reference split into its parts, unquoted: `id`, `o.id`,
/// and, between SQL's double quotes, names that are not plain identifiers:
/// `"Order Id"`, `o."Order Id"` (a `"` inside written `""`). `None` when `s`
/// is not one or two such parts.
pub fn column_ref_parts(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let (part, after) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let mut name = String::new();
                let mut chars = quoted.char_indices().peekable();
                let end = loop {
                    match chars.next()? {
                        (_, '"') if chars.peek().is_some_and(|&(_, c)| c == '"') => {
                            chars.next();
                            name.push('"');
                        }
                        (i, '"') => break i + 1,
                        (_, c) => name.push(c),
                    }
                };
                (name, &quoted[end..])
            }
            None => {
                let end = rest.find('.').unwrap_or(rest.len());
                let word = &rest[..end];
                if !is_identifier(word) {
                    return None;
                }
                (word.to_string(), &rest[end..])
            }
        };
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        if after.is_empty() {
            break;
        }
        rest = after.strip_prefix('.')?;
    }
    (parts.len() <= 2).then_some(parts)
}

/// Why `s` is not a column reference, and how to write it as one: a name
/// that is not an identifier goes in SQL's double quotes, which YAML needs
/// inside single ones.
pub(super) fn not_a_column_name(s: &str) -> String {
    let quoted = match s.split_once('.') {
        Some((table, column)) if is_identifier(table) => format!("{table}.{}", quote_ident(column)),
        _ => quote_ident(s),
    };
    format!(
        "\"{s}\" is not a column name; write a column (id) or a qualified column (o.id), and put a name with spaces or other characters in double quotes (in YAML inside single ones: '{quoted}')"
    )
}

/// The label of a partition dimension over a column that is not mapped:
/// its parts joined by `_` (`o.day` → `o_day`).
pub(super) fn unmapped_dimension_name(column: &str) -> String {
    column_ref_parts(column).map_or_else(|| column.replace('.', "_"), |p| p.join("_"))
}
