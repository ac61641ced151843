//! Reading a Prometheus text page (what `metrics-exporter-prometheus` renders), for tests that
//! check recorded metrics by their exporter names.
//!
//! ```
//! use tower_hardened_test_server::scrape;
//!
//! let page = scrape::parse("# TYPE up gauge\nup{job=\"a\"} 1\nup{job=\"b\"} 2\n");
//! assert_eq!(scrape::find(&page, "up", &[]), (2, 3.0));
//! assert_eq!(scrape::value(&page, "up", &[("job", "b")]), 2.0);
//! ```

use std::collections::BTreeMap;

/// One sample of a page: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of `page`, comments and blank lines left out.
///
/// # Panics
///
/// On a line that is not `name{k="v",...} value` or `name value`.
pub fn parse(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().expect("a number"))
        })
        .collect()
}

/// The samples named `name` whose labels include every pair of `with`: how many, their sum.
pub fn find(page: &[Sample], name: &str, with: &[(&str, &str)]) -> (usize, f64) {
    page.iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .fold((0, 0.0), |(n, s), (_, _, v)| (n + 1, s + v))
}

/// The sum of the samples named `name` whose labels include every pair of `with`.
pub fn value(page: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    find(page, name, with).1
}
