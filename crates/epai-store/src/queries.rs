//! Every statement EPAI runs lives in `queries/<table>/<name>.sql`; this macro embeds one by name
//! so a query is found by its file name, and a missing file fails the build.

macro_rules! named_query {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/queries/",
            $name,
            ".sql"
        ))
    };
}

pub(crate) use named_query;
