use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, task};
use tower_test::mock;

use super::*;
use crate::test_util::*;
use crate::{Error, Phase};

type Svc = mock::Spawn<Telemetry<mock::Mock<Request<()>, Response<ChannelBody>>>>;
type Handle = mock::Handle<Request<()>, Response<ChannelBody>>;

const URI: &str = "http://example.com:8080/a/b?token=secret";

fn setup() -> (Svc, Handle) {
    mock::spawn_layer(TelemetryLayer::new())
}

fn get() -> Request<()> {
    Request::get(URI).body(()).unwrap()
}

/// Captures the events of a `tracing` subscriber: every span with its fields, every event with
/// its level, fields and the span it belongs to.
mod traces {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::Context;
    use tracing_subscriber::registry::LookupSpan;

    pub(super) type Fields = BTreeMap<String, String>;

    #[derive(Debug, Clone)]
    pub(super) struct SpanRec {
        pub(super) name: &'static str,
        pub(super) fields: Fields,
    }

    #[derive(Debug, Clone)]
    pub(super) struct EventRec {
        pub(super) level: Level,
        pub(super) fields: Fields,
        /// Index into `spans` of the span it belongs to.
        pub(super) span: Option<usize>,
    }

    #[derive(Default)]
    struct State {
        spans: Vec<SpanRec>,
        ids: HashMap<u64, usize>,
        events: Vec<EventRec>,
    }

    #[derive(Clone, Default)]
    pub(super) struct Traces(Arc<Mutex<State>>);

    struct Visitor<'a>(&'a mut Fields);

    impl Visit for Visitor<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl Traces {
        pub(super) fn spans(&self) -> Vec<SpanRec> {
            self.0.lock().unwrap().spans.clone()
        }
        pub(super) fn events(&self) -> Vec<EventRec> {
            self.0.lock().unwrap().events.clone()
        }
        /// Installs a subscriber with this capture on the current thread.
        pub(super) fn install(&self) -> tracing::subscriber::DefaultGuard {
            use tracing_subscriber::layer::SubscriberExt;
            tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
        }
    }

    impl<S> tracing_subscriber::Layer<S> for Traces
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
            let mut fields = Fields::new();
            attrs.record(&mut Visitor(&mut fields));
            let mut st = self.0.lock().unwrap();
            let index = st.spans.len();
            st.spans.push(SpanRec {
                name: attrs.metadata().name(),
                fields,
            });
            st.ids.insert(id.into_u64(), index);
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
            let mut st = self.0.lock().unwrap();
            if let Some(&i) = st.ids.get(&id.into_u64()) {
                values.record(&mut Visitor(&mut st.spans[i].fields));
            }
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let mut fields = Fields::new();
            event.record(&mut Visitor(&mut fields));
            let parent = ctx.event_span(event).map(|s| s.id().into_u64());
            let mut st = self.0.lock().unwrap();
            let span = parent.and_then(|p| st.ids.get(&p).copied());
            st.events.push(EventRec {
                level: *event.metadata().level(),
                fields,
                span,
            });
        }
    }
}

/// A `metrics` recorder that keeps every series by name and labels (as given: no
/// sanitizing), for exact checks of names and attributes.
#[cfg(feature = "metrics")]
mod recorder {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

    #[derive(Default)]
    struct State {
        counters: BTreeMap<String, u64>,
        gauges: BTreeMap<String, f64>,
        histograms: BTreeMap<String, Vec<f64>>,
    }

    #[derive(Clone, Default)]
    pub(super) struct Captured(Arc<Mutex<State>>);

    /// `name{k=v,k=v}`, labels sorted by key.
    fn series(key: &Key) -> String {
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    struct Handle(Captured, String);

    impl metrics::CounterFn for Handle {
        fn increment(&self, value: u64) {
            *self
                .0
                 .0
                .lock()
                .unwrap()
                .counters
                .entry(self.1.clone())
                .or_default() += value;
        }
        fn absolute(&self, value: u64) {
            self.0
                 .0
                .lock()
                .unwrap()
                .counters
                .insert(self.1.clone(), value);
        }
    }

    impl metrics::GaugeFn for Handle {
        fn increment(&self, value: f64) {
            *self
                .0
                 .0
                .lock()
                .unwrap()
                .gauges
                .entry(self.1.clone())
                .or_default() += value;
        }
        fn decrement(&self, value: f64) {
            *self
                .0
                 .0
                .lock()
                .unwrap()
                .gauges
                .entry(self.1.clone())
                .or_default() -= value;
        }
        fn set(&self, value: f64) {
            self.0
                 .0
                .lock()
                .unwrap()
                .gauges
                .insert(self.1.clone(), value);
        }
    }

    impl metrics::HistogramFn for Handle {
        fn record(&self, value: f64) {
            let mut st = self.0 .0.lock().unwrap();
            st.histograms.entry(self.1.clone()).or_default().push(value);
        }
    }

    impl metrics::Recorder for Captured {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let s = series(key);
            self.0
                .lock()
                .unwrap()
                .counters
                .entry(s.clone())
                .or_default();
            Counter::from_arc(Arc::new(Handle(self.clone(), s)))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let s = series(key);
            self.0.lock().unwrap().gauges.entry(s.clone()).or_default();
            Gauge::from_arc(Arc::new(Handle(self.clone(), s)))
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Handle(self.clone(), series(key))))
        }
    }

    impl Captured {
        pub(super) fn counter(&self, series: &str) -> Option<u64> {
            self.0.lock().unwrap().counters.get(series).copied()
        }
        pub(super) fn gauge(&self, series: &str) -> Option<f64> {
            self.0.lock().unwrap().gauges.get(series).copied()
        }
        pub(super) fn histogram(&self, series: &str) -> Vec<f64> {
            let st = self.0.lock().unwrap();
            st.histograms.get(series).cloned().unwrap_or_default()
        }
        /// Every series name (with labels) recorded so far.
        pub(super) fn all(&self) -> Vec<String> {
            let st = self.0.lock().unwrap();
            st.counters
                .keys()
                .chain(st.gauges.keys())
                .chain(st.histograms.keys())
                .cloned()
                .collect()
        }
        pub(super) fn histograms(&self) -> Vec<(String, Vec<f64>)> {
            let st = self.0.lock().unwrap();
            st.histograms
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }
}

#[cfg(feature = "metrics")]
const BASE: &str = "http.request.method=GET,server.address=example.com,server.port=8080";

#[cfg(feature = "metrics")]
fn duration_series(extra: &[&str]) -> String {
    let mut labels: Vec<String> = BASE.split(',').map(str::to_owned).collect();
    labels.extend(extra.iter().map(|s| s.to_string()));
    labels.sort();
    format!("http.client.request.duration{{{}}}", labels.join(","))
}

#[cfg(feature = "metrics")]
fn active_series() -> String {
    format!("http.client.active_requests{{{BASE}}}")
}

#[test]
fn error_types_are_distinct_and_cover_every_phase_and_kind() {
    let mut v = ERROR_TYPES.to_vec();
    v.sort_unstable();
    v.dedup();
    assert_eq!(v.len(), ERROR_TYPES.len());
    for kind in [crate::ErrorKind::Overloaded, crate::ErrorKind::BodyTooLarge] {
        assert!(ERROR_TYPES.contains(&kind.as_str()));
    }
    for &p in Phase::ALL {
        let e = Error::timeout(p, Duration::from_secs(1));
        assert_eq!(exchange::error_type(&e), p.as_str());
        assert!(ERROR_TYPES.contains(&p.as_str()));
    }
    let overloaded = Error::overloaded(Phase::Acquire, 3);
    assert_eq!(exchange::error_type(&overloaded), "overloaded");
    let io = std::io::Error::other(Error::body_too_large(10));
    assert_eq!(exchange::error_type(&io), "body_too_large");
    let other = std::io::Error::other("refused");
    assert_eq!(exchange::error_type(&other), "_OTHER");
}

#[test]
fn send_sync_clone() {
    assert_send_sync::<TelemetryLayer>();
    assert_send_sync::<Telemetry<()>>();
    assert_send_sync::<TelemetryFuture<std::future::Ready<()>>>();
    assert_send_sync::<TelemetryBody<http_body_util::Full<Bytes>>>();
    assert_clone::<Telemetry<()>>();
}

#[tokio::test]
async fn body_hints_are_forwarded() {
    let traces = traces::Traces::default();
    let _g = traces.install();
    let mut req = get();
    let rec = exchange::Recording::start(&mut req, &mut Default::default());
    let body = TelemetryBody::new(http_body_util::Full::new(Bytes::from("12345")), rec);
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    let rec = exchange::Recording::start(&mut req, &mut Default::default());
    let empty = TelemetryBody::new(http_body_util::Empty::<Bytes>::new(), rec);
    assert!(empty.is_end_stream());
    assert_eq!(empty.size_hint().exact(), Some(0));
}

/// The span: one per request, with its fields; the status recorded at the headers; the failure
/// an event on it; events of inner layers (here a deadline) inside it.
#[tokio::test(start_paused = true)]
async fn one_span_per_request_with_its_fields_and_the_failure_on_it() {
    let traces = traces::Traces::default();
    let _g = traces.install();
    let (mut svc, mut handle) = mock::spawn_with(|inner| {
        tower_layer::Layer::layer(
            &TelemetryLayer::new(),
            tower_layer::Layer::layer(&crate::DeadlineLayer::new(Duration::from_secs(2)), inner),
        )
    });
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(get()));
    let (_req, send) = handle.next_request().await.unwrap();
    let (_tx, body) = ChannelBody::new();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::ACCEPTED;
    send.send_response(resp);
    let resp = assert_ready!(fut.poll()).unwrap();

    let spans = traces.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span.name, "http.client.request");
    assert_eq!(span.fields["http.request.method"], "GET");
    assert_eq!(span.fields["server.address"], "example.com");
    assert_eq!(span.fields["server.port"], "8080");
    assert_eq!(span.fields["http.response.status_code"], "202");
    assert!(!span.fields.contains_key("error.type"));
    assert!(
        span.fields
            .values()
            .all(|v| !v.contains("/a/b") && !v.contains("token")),
        "no path or query in the span: {span:?}"
    );

    // The body stalls: the deadline cuts it at 2 s, inside the span.
    let mut body = task::spawn(resp.into_body());
    assert_pending!(body.enter(|cx, b| b.poll_frame(cx)));
    advance(Duration::from_secs(2)).await;
    let err = assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    assert_eq!(phase_of(&err), Some(Phase::Total));

    let spans = traces.spans();
    assert_eq!(spans[0].fields["error.type"], "total");
    assert_eq!(spans[0].fields["otel.status_code"], "ERROR");
    let events = traces.events();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.fields.contains_key("error.type"))
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].level, tracing::Level::DEBUG);
    assert_eq!(
        failed[0].span,
        Some(0),
        "the failure is an event on the span"
    );
    assert_eq!(failed[0].fields["error.type"], "total");
    assert_eq!(failed[0].fields["status"], "202");
    assert_eq!(
        failed[0].fields["message"],
        "request failed: request deadline of 2s exceeded"
    );
    // The deadline's own event fired inside the span.
    let fired: Vec<_> = events
        .iter()
        .filter(|e| e.fields.get("phase").map(String::as_str) == Some("total"))
        .collect();
    assert_eq!(fired.len(), 1, "{events:?}");
    assert_eq!(fired[0].span, Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_second_request_gets_a_second_span_and_a_cancelled_one_says_so() {
    let traces = traces::Traces::default();
    let _g = traces.install();
    let (mut svc, mut handle) = setup();
    assert_ready!(svc.poll_ready()).unwrap();
    let fut = svc.call(get());
    drop(fut);
    let _ = handle.next_request().await;
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::post("https://[::1]/x").body(()).unwrap()));
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("connection refused"));
    assert!(assert_ready!(fut.poll()).is_err());

    let spans = traces.spans();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].fields["error.type"], "cancelled");
    assert_eq!(spans[1].fields["http.request.method"], "POST");
    assert_eq!(spans[1].fields["server.address"], "::1");
    assert_eq!(spans[1].fields["server.port"], "443");
    assert_eq!(spans[1].fields["error.type"], "_OTHER");
    let failed: Vec<_> = traces
        .events()
        .into_iter()
        .filter(|e| e.fields.contains_key("error.type"))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].span, Some(0));
    assert_eq!(failed[0].fields["error.type"], "cancelled");
    assert_eq!(failed[1].span, Some(1));
    assert_eq!(failed[1].level, tracing::Level::DEBUG);
    assert_eq!(
        failed[1].fields["message"],
        "request failed: connection refused"
    );
}

/// A held body is reported at `warn`, as an event on the request span, with method, URI
/// (query left out) and age.
#[cfg(feature = "drain")]
#[tokio::test(start_paused = true)]
async fn the_held_body_report_is_a_warning_on_the_request_span() {
    let traces = traces::Traces::default();
    let _g = traces.install();
    let stats = crate::Stats::new();
    let (mut svc, mut handle) = mock::spawn_with(|inner| {
        let drain = crate::DrainOnDropLayer::new()
            .leak_threshold(Duration::from_secs(1))
            .stats(stats.clone());
        tower_layer::Layer::layer(
            &TelemetryLayer::new(),
            tower_layer::Layer::layer(&drain, inner),
        )
    });
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(get()));
    let (_req, send) = handle.next_request().await.unwrap();
    let (_tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let held = assert_ready!(fut.poll()).unwrap();
    advance(Duration::from_millis(1200)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(stats.snapshot().leaks, 1);
    let warns: Vec<_> = traces
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .collect();
    assert_eq!(warns.len(), 1, "{:?}", traces.events());
    let w = &warns[0];
    assert_eq!(w.span, Some(0), "an event on the request span");
    assert_eq!(w.fields["method"], "GET");
    assert_eq!(w.fields["uri"], "http://example.com:8080/a/b?…");
    assert!(w.fields["age"].starts_with("1."), "{w:?}");
    assert!(w.fields["message"].contains("held for"), "{w:?}");
    drop(held);
}

/// Sends `req` through the preset (held-body threshold 1 s) over a mock, answers it (after a
/// lost connection first, if `replayed`), holds the body past the threshold, and gives the
/// warnings logged and the stats.
#[cfg(feature = "preset")]
async fn preset_holds(
    req: Request<http_body_util::Empty<Bytes>>,
    replayed: bool,
) -> (Vec<traces::EventRec>, crate::StatsSnapshot) {
    use crate::HardenedRequestBody;
    use http_body_util::Empty;
    let traces = traces::Traces::default();
    let _g = traces.install();
    let preset = crate::Hardened::new().drain_with(|d| d.leak_threshold(Duration::from_secs(1)));
    let (inner, mut handle) =
        mock::pair::<Request<HardenedRequestBody<Empty<Bytes>>>, Response<ChannelBody>>();
    let mut svc = tower_layer::Layer::layer(&preset.layer(), inner);
    let mut fut = task::spawn(tower_service::Service::call(&mut svc, req));
    assert_pending!(fut.poll());
    let (_req, mut send) = handle.next_request().await.unwrap();
    if replayed {
        send.send_error(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            crate::replay::lost::LostConnection {
                idle: Duration::from_secs(1),
                source: None,
            },
        ));
        assert_pending!(fut.poll());
        send = handle.next_request().await.unwrap().1;
    }
    let (_tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let held = assert_ready!(fut.poll()).unwrap();
    advance(Duration::from_millis(1200)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let warns = traces
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .collect();
    drop(held);
    (warns, preset.stats_handle().snapshot())
}

/// The same report through the preset, whose fused stack registers the body itself.
#[cfg(feature = "preset")]
#[tokio::test(start_paused = true)]
async fn the_preset_reports_a_held_body_on_the_request_span() {
    let req = Request::get(URI)
        .body(http_body_util::Empty::new())
        .unwrap();
    let (warns, snap) = preset_holds(req, false).await;
    assert_eq!(snap.leaks, 1);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(warns[0].span, Some(0), "an event on the request span");
    assert_eq!(warns[0].fields["method"], "GET");
}

/// After a replay the report still names the request (the replay took the copy it names).
#[cfg(feature = "preset")]
#[tokio::test(start_paused = true)]
async fn the_preset_names_a_replayed_request_in_its_held_body_report() {
    let req = Request::put("http://a.test/orders/7")
        .header("idempotency-key", "k")
        .body(http_body_util::Empty::new())
        .unwrap();
    let (warns, snap) = preset_holds(req, true).await;
    assert_eq!((snap.replays, snap.leaks), (1, 1));
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(
        (
            warns[0].fields["method"].as_str(),
            warns[0].fields["uri"].as_str()
        ),
        ("PUT", "http://a.test/orders/7")
    );
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn duration_runs_to_the_end_of_the_body_with_bounded_attributes() {
    let rec = recorder::Captured::default();
    let _g = metrics::set_default_local_recorder(&rec);
    let (mut svc, mut handle) = setup();
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(get()));
    let (req, send) = handle.next_request().await.unwrap();
    let exchange = Exchange::of(&req).expect("inner layers find the exchange");
    assert_eq!(rec.gauge(&active_series()), Some(1.0));

    advance(Duration::from_secs(1)).await;
    // A pool hands the request its connection: the time in queue, recorded once, and the
    // connection counted active until the exchange ends.
    let server = record::Server::new(
        Some(&"http".parse().unwrap()),
        Some(&"example.com:8080".parse().unwrap()),
    );
    let conn = std::sync::Arc::new(record::ConnTracker::new(server));
    conn.opened();
    exchange.got_connection(&conn);
    exchange.got_connection(&conn);
    let queue = format!("http.client.request.time_in_queue{{{BASE}}}");
    assert_eq!(rec.histogram(&queue), vec![1.0]);
    let open = |state: &str| {
        format!("http.client.open_connections{{http.connection.state={state},server.address=example.com,server.port=8080}}")
    };
    assert_eq!(rec.gauge(&open("active")), Some(1.0));
    assert_eq!(rec.gauge(&open("idle")), Some(0.0));
    let (tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let resp = assert_ready!(fut.poll()).unwrap();
    let series = duration_series(&["http.response.status_code=200"]);
    assert!(rec.histogram(&series).is_empty(), "not over at the headers");
    assert_eq!(rec.gauge(&active_series()), Some(1.0));

    let mut body = task::spawn(resp.into_body());
    advance(Duration::from_secs(1)).await;
    tx.send(Ok(Bytes::from("a"))).unwrap();
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .is_ok());
    advance(Duration::from_secs(1)).await;
    drop(tx);
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx))).is_none());

    assert_eq!(rec.histogram(&series), vec![3.0], "{:?}", rec.histograms());
    assert_eq!(rec.gauge(&active_series()), Some(0.0));
    assert_eq!(
        rec.gauge(&open("active")),
        Some(0.0),
        "idle again once the exchange ended"
    );
    assert_eq!(rec.gauge(&open("idle")), Some(1.0));
    for s in rec.all() {
        assert!(!s.contains("/a/b") && !s.contains("token"), "{s}");
    }
    // Polled again after its end: nothing more is recorded.
    drop(body);
    assert_eq!(rec.histogram(&series).len(), 1);
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn error_type_is_the_phase_or_the_kind() {
    let rec = recorder::Captured::default();
    let _g = metrics::set_default_local_recorder(&rec);
    let (mut svc, mut handle) = setup();

    // Failures before the headers.
    let before: [(crate::BoxError, &str); 3] = [
        (
            Error::timeout(Phase::ResponseHeaders, Duration::from_secs(5)).into(),
            "response_headers",
        ),
        (Error::overloaded(Phase::Acquire, 1024).into(), "overloaded"),
        ("connection refused".into(), "_OTHER"),
    ];
    for (err, et) in before {
        assert_ready!(svc.poll_ready()).unwrap();
        let mut fut = task::spawn(svc.call(get()));
        let (_req, send) = handle.next_request().await.unwrap();
        advance(Duration::from_millis(250)).await;
        send.send_error(err);
        assert!(assert_ready!(fut.poll()).is_err());
        let series = duration_series(&[&format!("error.type={et}")]);
        assert_eq!(rec.histogram(&series), vec![0.25], "{:?}", rec.histograms());
    }

    // A failure in the body keeps the status.
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(get()));
    let (_req, send) = handle.next_request().await.unwrap();
    let (tx, body) = ChannelBody::new();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    send.send_response(resp);
    let mut body = task::spawn(assert_ready!(fut.poll()).unwrap().into_body());
    advance(Duration::from_secs(2)).await;
    tx.send(Err(
        Error::timeout(Phase::BodyIdle, Duration::from_secs(2)).into()
    ))
    .unwrap();
    assert!(assert_ready!(body.enter(|cx, b| b.poll_frame(cx)))
        .unwrap()
        .is_err());
    let series = duration_series(&["error.type=body_idle", "http.response.status_code=503"]);
    assert_eq!(rec.histogram(&series), vec![2.0]);

    // Dropped before the headers: cancelled. Dropped body: no error.
    assert_ready!(svc.poll_ready()).unwrap();
    let fut = svc.call(get());
    advance(Duration::from_secs(1)).await;
    drop(fut);
    assert_eq!(
        rec.histogram(&duration_series(&["error.type=cancelled"])),
        vec![1.0]
    );
    let _ = handle.next_request().await;
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(get()));
    let (_req, send) = handle.next_request().await.unwrap();
    let (_tx, body) = ChannelBody::new();
    send.send_response(Response::new(body));
    let resp = assert_ready!(fut.poll()).unwrap();
    advance(Duration::from_millis(500)).await;
    drop(resp);
    assert_eq!(
        rec.histogram(&duration_series(&["http.response.status_code=200"])),
        vec![0.5]
    );
    assert_eq!(rec.gauge(&active_series()), Some(0.0), "every one ended");
    for (series, _) in rec.histograms() {
        let et = series
            .split(['{', ',', '}'])
            .find_map(|l| l.strip_prefix("error.type="));
        assert!(et.is_none_or(|e| ERROR_TYPES.contains(&e)), "{series}");
    }
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn a_body_over_at_the_headers_is_recorded_at_once() {
    let rec = recorder::Captured::default();
    let _g = metrics::set_default_local_recorder(&rec);
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<()>, Response<http_body_util::Empty<Bytes>>, _>(
            TelemetryLayer::new(),
        );
    assert_ready!(svc.poll_ready()).unwrap();
    let mut fut = task::spawn(svc.call(Request::head("http://example.com/").body(()).unwrap()));
    let (_req, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(100)).await;
    send.send_response(Response::new(http_body_util::Empty::new()));
    let resp = assert_ready!(fut.poll()).unwrap();
    let series = "http.client.request.duration{http.request.method=HEAD,http.response.status_code=200,server.address=example.com,server.port=80}";
    assert_eq!(rec.histogram(series), vec![0.1], "{:?}", rec.histograms());
    drop(resp);
    assert_eq!(rec.histogram(series).len(), 1, "recorded once");
}

#[cfg(feature = "metrics")]
#[test]
fn stats_counters_are_the_tower_hardened_series() {
    use crate::stats::{CloseReason, DrainAbandon, Stats};
    let rec = recorder::Captured::default();
    let _g = metrics::set_default_local_recorder(&rec);
    describe_metrics();
    // Registered at zero, one series per label value.
    assert_eq!(rec.counter("tower_hardened.replays{}"), Some(0));
    assert_eq!(
        rec.counter("tower_hardened.timeouts{phase=connect}"),
        Some(0)
    );
    assert_eq!(
        rec.counter("tower_hardened.drains{outcome=no_runtime}"),
        Some(0)
    );
    assert_eq!(
        rec.counter("tower_hardened.connections.closed{reason=cap}"),
        Some(0)
    );

    let stats = Stats::new();
    stats.timeout(Phase::BodyIdle);
    stats.timeout(Phase::BodyIdle);
    stats.timeout(Phase::Total);
    stats.overload();
    stats.drain_started();
    stats.drain_finished();
    stats.drain_abandoned(DrainAbandon::Time);
    stats.leak();
    stats.connection_opened();
    stats.connection_closed(CloseReason::Lifetime);
    assert_eq!(
        rec.counter("tower_hardened.timeouts{phase=body_idle}"),
        Some(2)
    );
    assert_eq!(rec.counter("tower_hardened.timeouts{phase=total}"), Some(1));
    assert_eq!(
        rec.counter("tower_hardened.timeouts{phase=connect}"),
        Some(0)
    );
    assert_eq!(rec.counter("tower_hardened.overloads{}"), Some(1));
    assert_eq!(
        rec.counter("tower_hardened.drains{outcome=finished}"),
        Some(1)
    );
    assert_eq!(rec.counter("tower_hardened.drains{outcome=time}"), Some(1));
    assert_eq!(rec.counter("tower_hardened.leaks{}"), Some(1));
    assert_eq!(
        rec.counter("tower_hardened.connections.closed{reason=lifetime}"),
        Some(1)
    );
    record::replay();
    assert_eq!(rec.counter("tower_hardened.replays{}"), Some(1));
    stats.adaptive_limit_add(20);
    stats.adaptive_limit_add(-3);
    assert_eq!(rec.gauge("tower_hardened.adaptive.limit{}"), Some(17.0));
    assert_eq!(stats.snapshot().adaptive_limit, 17);
    // The snapshot still counts as before.
    assert_eq!(stats.snapshot().timeouts(Phase::BodyIdle), 2);
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn a_connection_is_active_while_a_request_uses_it() {
    let rec = recorder::Captured::default();
    let _g = metrics::set_default_local_recorder(&rec);
    let server = record::Server::new(
        Some(&http::uri::Scheme::HTTP),
        Some(&"10.0.0.1:9000".parse().unwrap()),
    );
    assert_eq!(server.port(), "9000");
    let idle = "http.client.open_connections{http.connection.state=idle,server.address=10.0.0.1,server.port=9000}";
    let active = "http.client.open_connections{http.connection.state=active,server.address=10.0.0.1,server.port=9000}";
    let t = record::ConnTracker::new(server);
    t.begin_use(); // before it is counted open: only the count of users moves
    assert_eq!(rec.gauge(active), None);
    t.opened();
    t.opened();
    assert_eq!(rec.gauge(active), Some(1.0));
    t.end_use();
    assert_eq!((rec.gauge(idle), rec.gauge(active)), (Some(1.0), Some(0.0)));
    // Two streams of an HTTP/2 connection: active until both are done.
    t.begin_use();
    t.begin_use();
    assert_eq!((rec.gauge(idle), rec.gauge(active)), (Some(0.0), Some(1.0)));
    t.end_use();
    assert_eq!((rec.gauge(idle), rec.gauge(active)), (Some(0.0), Some(1.0)));
    t.end_use();
    assert_eq!((rec.gauge(idle), rec.gauge(active)), (Some(1.0), Some(0.0)));
    advance(Duration::from_secs(7)).await;
    t.closed(Duration::from_secs(7));
    t.closed(Duration::from_secs(8));
    t.begin_use();
    t.opened();
    assert_eq!((rec.gauge(idle), rec.gauge(active)), (Some(0.0), Some(0.0)));
    assert_eq!(
        rec.histogram("http.client.connection.duration{server.address=10.0.0.1,server.port=9000}"),
        vec![7.0]
    );
}

#[cfg(feature = "metrics")]
#[test]
fn methods_outside_the_standard_nine_are_other() {
    assert_eq!(record::method_label(&http::Method::PATCH), "PATCH");
    let custom = http::Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(record::method_label(&custom), "_OTHER");
    let s = record::Server::new(Some(&http::uri::Scheme::HTTPS), Some(&"h".parse().unwrap()));
    assert_eq!(s.port(), "443");
    let none = record::Server::new(None, None);
    assert_eq!(none.port(), "");
}

/// Series are registered once and kept, but a different recorder in use (a test's local one,
/// a global one installed after the first requests) gets series of its own.
#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn kept_series_follow_the_recorder_in_use() {
    type Empty = http_body_util::Empty<Bytes>;
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<()>, Response<Empty>, _>(TelemetryLayer::new());
    let (first, second) = (recorder::Captured::default(), recorder::Captured::default());
    let series = duration_series(&["http.response.status_code=200"]);
    for (rec, requests) in [(&first, 2), (&second, 1), (&first, 1)] {
        let _g = metrics::set_default_local_recorder(rec);
        for _ in 0..requests {
            assert_ready!(svc.poll_ready()).unwrap();
            let mut fut = task::spawn(svc.call(get()));
            let (_req, send) = handle.next_request().await.unwrap();
            send.send_response(Response::new(Empty::new()));
            drop(assert_ready!(fut.poll()).unwrap());
        }
    }
    assert_eq!(first.histogram(&series).len(), 3);
    assert_eq!(second.histogram(&series).len(), 1);
    assert_eq!(first.gauge(&active_series()), Some(0.0));
    assert_eq!(second.gauge(&active_series()), Some(0.0));
}
