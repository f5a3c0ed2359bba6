//! With the `otlp` feature, spans also go to an OTLP/HTTP collector: here a
//! one-shot fake collector on the loopback interface.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    time::Duration,
};

use flock_trace_duckdb::TraceConfig;

use crate::{TempDir, count, spans, traced};

#[test]
fn spans_also_reach_an_otlp_collector() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let collector = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        let mut content_type = String::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        (request_line, content_type, body)
    });

    let dir = TempDir::new("otlp");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .otlp_endpoint(endpoint)
        .build()
        .unwrap();
    traced(&guard, || spans(3));
    let report = guard.shutdown();
    assert_eq!((report.exported, report.unexported), (3, 0), "{report}");
    assert_eq!(count(&path), 3);

    let (request_line, content_type, body) = collector.join().unwrap();
    assert!(
        request_line.starts_with("POST /v1/traces "),
        "{request_line}"
    );
    assert_eq!(content_type, "application/x-protobuf");
    // The protobuf body carries the span names as plain bytes.
    assert!(body.windows(9).any(|w| w == b"work.step"));
}
