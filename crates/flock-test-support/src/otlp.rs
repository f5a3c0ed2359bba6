//! A one-request fake OTLP/HTTP collector on the loopback interface.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    thread::JoinHandle,
    time::Duration,
};

/// The one request the collector received.
#[derive(Debug)]
pub struct Request {
    /// Its first line (`POST /v1/traces HTTP/1.1`).
    pub line: String,
    /// Its `content-type` header, or `""`.
    pub content_type: String,
    /// Its body.
    pub body: Vec<u8>,
}

impl Request {
    /// Whether the body holds `needle` (a protobuf body carries strings as bytes).
    pub fn body_has(&self, needle: &[u8]) -> bool {
        self.body.windows(needle.len()).any(|w| w == needle)
    }
}

/// Listens on a free port; returns the collector's address (`http://127.0.0.1:PORT`)
/// and the thread that accepts one request, answers `200 OK` and returns it.
///
/// # Panics
/// When no port can be bound; the thread panics when no request comes within 10 s
/// of its connection or the request is not HTTP.
pub fn collector() -> (String, JoinHandle<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
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
                "content-type" => value.trim().clone_into(&mut content_type),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        Request {
            line,
            content_type,
            body,
        }
    });
    (address, thread)
}
