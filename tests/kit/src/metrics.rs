//! The one Prometheus text parser of the suites and the bench. [`samples`] reads the exposition
//! format line by line; [`metric`] sums the series of one name that carry the given labels (the
//! suites' assertions: absent reads as 0); [`sum`] is the same, `None` when no series is there
//! (the bench: a missing series must not read as 0); [`label`] reads one label of a sample (a
//! histogram bucket's `le`), so `_bucket`, `_sum` and `_count` series are read from [`samples`].

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// What stands between the braces, as written (`a="1",b="2"`); empty without labels.
    pub labels: &'a str,
    pub value: f64,
}

/// Every sample of an exposition text (comments and unparsable lines skipped).
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(sample)
}

fn sample(line: &str) -> Option<Sample<'_>> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse::<f64>().ok()?;
    let head = head.trim_end();
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The value of a Prometheus sample `name{labels}` (labels as written, e.g. `topic="titok.users"`),
/// summed over every series that has all the given labels; 0 when there is none.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    sum(text, name, labels).unwrap_or(0.0)
}

/// Like [`metric`], `None` when no series of `name` has all the given labels.
pub fn sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    samples(text)
        .filter(|s| s.name == name && labels.iter().all(|label| s.labels.contains(label)))
        .fold(None, |total, s| Some(total.unwrap_or(0.0) + s.value))
}

/// The value of label `name` in a sample's labels (`le="0.5"` → `0.5`); label values holding a
/// comma are not supported (the server's labels have none).
pub fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        pair.trim()
            .strip_prefix(name)?
            .strip_prefix("=\"")?
            .strip_suffix('"')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE titok_x_total counter
titok_x_total{topic=\"a\",kind=\"k\"} 2
titok_x_total{topic=\"b\"} 3
titok_x_total_more 100
titok_h_bucket{le=\"1\"} 4
titok_h_bucket{le=\"+Inf\"} 5
titok_h_sum 9.5
titok_h_count 5
";

    #[test]
    fn metric_sums_the_series_of_exactly_that_name_with_every_label() {
        assert_eq!(metric(TEXT, "titok_x_total", &[]), 5.0);
        assert_eq!(metric(TEXT, "titok_x_total", &["topic=\"a\""]), 2.0);
        assert_eq!(
            metric(TEXT, "titok_x_total", &["topic=\"a\"", "kind=\"j\""]),
            0.0
        );
        assert_eq!(metric(TEXT, "titok_missing", &[]), 0.0);
        assert_eq!(sum(TEXT, "titok_missing", &[]), None);
        assert_eq!(sum(TEXT, "titok_h_sum", &[]), Some(9.5));
    }

    #[test]
    fn histogram_buckets_read_through_samples_and_label() {
        let buckets: Vec<(&str, f64)> = samples(TEXT)
            .filter(|s| s.name == "titok_h_bucket")
            .filter_map(|s| Some((label(s.labels, "le")?, s.value)))
            .collect();
        assert_eq!(buckets, vec![("1", 4.0), ("+Inf", 5.0)]);
    }
}
