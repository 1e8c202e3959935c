//! Latency at a constant request rate, free of coordinated omission (the method of wrk2):
//! each of C keep-alive connections sends on a fixed schedule (request k of connection c
//! at `start + (k·C + c) / rate`), and a request's latency runs from the moment it was
//! *scheduled*, not from when it was sent. A server that stalls therefore shows the
//! stall in every request that queued behind it, as users would see it, instead of
//! the closed-loop figure (wrk's own percentiles) where a stalled server simply receives
//! fewer requests.
//!
//! The requests are plain HTTP/1.1 POSTs over tokio sockets (no client library: the
//! schedule and the clock are the point, and a client with its own pool would hide both).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// Latency percentiles of one constant-rate run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latencies {
    /// The rate asked for (requests per second).
    pub rate: f64,
    /// Requests completed within the measured window.
    pub completed: u64,
    /// Non-200 answers and answers carrying GraphQL `errors`.
    pub errors: u64,
    /// Requests never sent because the run fell a whole window behind its schedule (the
    /// rate was beyond what the server sustains); 0 in a meaningful run.
    pub abandoned: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Latencies {
    /// p99 over p50 (0 when nothing completed).
    pub fn tail_ratio(&self) -> f64 {
        if self.p50_ms > 0.0 {
            self.p99_ms / self.p50_ms
        } else {
            0.0
        }
    }
}

/// One run: `rate` requests per second over `connections` connections to `address`
/// (`host:port`), POSTing to `path` the `(token, body)` requests in turn; the first
/// `warmup` is not counted, then `measured` is.
pub async fn run(
    address: &str,
    path: &str,
    requests: &[(String, String)],
    rate: f64,
    connections: usize,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Latencies> {
    if requests.is_empty() || rate <= 0.0 || connections == 0 {
        bail!("a constant-rate run needs requests, a rate and connections");
    }
    let raw: Arc<Vec<Vec<u8>>> = Arc::new(
        requests
            .iter()
            .map(|(token, body)| encode(address, path, token, body))
            .collect(),
    );
    let start = Instant::now() + Duration::from_millis(50);
    let (from, until) = (start + warmup, start + warmup + measured);
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let (raw, address) = (raw.clone(), address.to_owned());
        let first = start + Duration::from_secs_f64(c as f64 / rate);
        tasks.push(tokio::spawn(async move {
            connection(&address, &raw, c, first, interval, from, until).await
        }));
    }
    let mut latencies = Vec::new();
    let (mut errors, mut abandoned) = (0, 0);
    for task in tasks {
        let (mut l, e, a) = task.await??;
        latencies.append(&mut l);
        errors += e;
        abandoned += a;
    }
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1e3
    };
    Ok(Latencies {
        rate,
        completed: latencies.len() as u64,
        errors,
        abandoned,
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
    })
}

/// One connection's schedule; returns the latencies (µs) of the requests scheduled inside
/// `[from, until)`, how many of those failed, and how many were never sent because the
/// connection fell more than the measured window behind.
async fn connection(
    address: &str,
    raw: &[Vec<u8>],
    index: usize,
    first: Instant,
    interval: Duration,
    from: Instant,
    until: Instant,
) -> anyhow::Result<(Vec<u64>, u64, u64)> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut scheduled = first;
    let mut k = index;
    let mut body = Vec::new();
    let give_up = until + until.duration_since(from);
    while scheduled < until {
        if Instant::now() > give_up {
            let left = until.duration_since(scheduled).as_secs_f64() / interval.as_secs_f64();
            return Ok((latencies, errors, left.ceil() as u64));
        }
        tokio::time::sleep_until(scheduled.into()).await;
        stream.get_mut().write_all(&raw[k % raw.len()]).await?;
        let ok = read_response(&mut stream, &mut body).await?;
        let done = Instant::now();
        if scheduled >= from {
            latencies.push(done.duration_since(scheduled).as_micros() as u64);
            if !ok {
                errors += 1;
            }
        }
        scheduled += interval;
        k += 1;
    }
    Ok((latencies, errors, 0))
}

fn encode(address: &str, path: &str, token: &str, body: &str) -> Vec<u8> {
    let authorization = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\n{authorization}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one HTTP/1.1 response (Content-Length or chunked) into `body`; true when it is a
/// 200 whose body has no GraphQL `errors`.
async fn read_response(stream: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> anyhow::Result<bool> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status_ok = line.split_whitespace().nth(1) == Some("200");
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("the server closed the connection mid-response");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    body.clear();
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)?;
            let start = body.len();
            body.resize(start + size, 0);
            stream.read_exact(&mut body[start..]).await?;
            line.clear();
            stream.read_line(&mut line).await?;
            if size == 0 {
                break;
            }
        }
    } else {
        let length = length.context("a response without Content-Length or chunked encoding")?;
        body.resize(length, 0);
        stream.read_exact(body).await?;
    }
    Ok(status_ok && !body.windows(9).any(|w| w == b"\"errors\":"))
}
