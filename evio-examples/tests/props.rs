//! Property tests of the protocol engines (no sockets): however the input
//! is split into reads, the replies are the same; arbitrary bytes never
//! panic, and split input only ever delays replies.

use evio_core::Action;
use evio_examples::{http, redis, resp::Limits, store::Store};
use proptest::prelude::*;
use proptest::sample::Index;

/// Feeds `input` cut at `cuts` (`None`: whole), stopping at the first
/// action that ends the connection; returns the output.
fn feed_with(
    mut feed: impl FnMut(&[u8], &mut Vec<u8>) -> Action,
    input: &[u8],
    cuts: Option<&[Index]>,
) -> Vec<u8> {
    let mut points: Vec<usize> = cuts
        .unwrap_or(&[])
        .iter()
        .map(|i| i.index(input.len() + 1))
        .collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    let mut out = Vec::new();
    for w in points.windows(2) {
        if w[0] < w[1] && feed(&input[w[0]..w[1]], &mut out) != Action::None {
            break;
        }
    }
    out
}

fn redis_run(input: &[u8], cuts: Option<&[Index]>) -> Vec<u8> {
    let mut engine = redis::Engine::new(Store::for_loops(1), Limits::default());
    let mut session = redis::Session::default();
    feed_with(|p, out| engine.feed(&mut session, p, out), input, cuts)
}

fn http_run(engine: &http::Engine, input: &[u8], cuts: Option<&[Index]>) -> Vec<u8> {
    let mut engine = engine.clone();
    let mut session = http::Session::default();
    feed_with(|p, out| engine.feed(&mut session, p, out), input, cuts)
}

/// One well-formed Redis command, as a multibulk or (when its arguments
/// allow) inline.
fn redis_command() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::collection::vec(prop::sample::select(b"ab\r\n\0 \"".to_vec()), 1..4);
    let value = prop::collection::vec(any::<u8>(), 0..40);
    let args = prop_oneof![
        (key.clone(), value.clone()).prop_map(|(k, v)| vec![b"SET".to_vec(), k, v]),
        key.clone().prop_map(|k| vec![b"GET".to_vec(), k]),
        key.clone().prop_map(|k| vec![b"INCR".to_vec(), k]),
        prop::collection::vec(key.clone(), 1..4)
            .prop_map(|ks| [vec![b"DEL".to_vec()], ks].concat()),
        prop::collection::vec(key, 1..4).prop_map(|ks| [vec![b"MGET".to_vec()], ks].concat()),
        value.prop_map(|v| vec![b"ECHO".to_vec(), v]),
        Just(vec![b"PING".to_vec()]),
        Just(vec![b"DBSIZE".to_vec()]),
        Just(vec![b"nosuch".to_vec(), b"x".to_vec()]),
    ];
    (args, any::<bool>()).prop_map(|(args, inline)| {
        let plain = args
            .iter()
            .all(|a| !a.is_empty() && a.iter().all(|b| b.is_ascii_alphanumeric()));
        if inline && plain {
            let mut line = args.join(&b' ');
            line.extend_from_slice(b"\r\n");
            return line;
        }
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(&a);
            out.extend_from_slice(b"\r\n");
        }
        out
    })
}

/// One well-formed HTTP request, with a body sometimes.
fn http_request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "HEAD", "POST"]);
    let path = prop::sample::select(vec!["/", "/x", "/?a=b"]);
    let body = prop::collection::vec(any::<u8>(), 0..64);
    (method, path, body, any::<bool>()).prop_map(|(m, p, body, extra)| {
        let mut req = format!("{m} {p} HTTP/1.1\r\nHost: h\r\n").into_bytes();
        if extra {
            req.extend_from_slice(b"User-Agent: proptest\r\nAccept: */*\r\n");
        }
        if !body.is_empty() {
            req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(&body);
        req
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn redis_replies_do_not_depend_on_splits(
        cmds in prop::collection::vec(redis_command(), 1..12),
        cuts in prop::collection::vec(any::<Index>(), 1..12),
    ) {
        let input = cmds.concat();
        prop_assert_eq!(redis_run(&input, Some(&cuts)), redis_run(&input, None));
    }

    #[test]
    fn redis_arbitrary_bytes(
        input in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let whole = redis_run(&input, None);
        let split = redis_run(&input, Some(&cuts));
        prop_assert!(whole.starts_with(&split), "split {:?} is not a prefix of whole {:?}",
            String::from_utf8_lossy(&split), String::from_utf8_lossy(&whole));
    }

    #[test]
    fn http_replies_do_not_depend_on_splits(
        reqs in prop::collection::vec(http_request(), 1..8),
        cuts in prop::collection::vec(any::<Index>(), 1..12),
    ) {
        let engine = http::Engine::new(http::Config::default());
        let input = reqs.concat();
        let whole = http_run(&engine, &input, None);
        prop_assert_eq!(whole.windows(9).filter(|w| w == b"HTTP/1.1 ").count(), reqs.len());
        prop_assert_eq!(http_run(&engine, &input, Some(&cuts)), whole);
    }

    #[test]
    fn http_arbitrary_bytes(
        prefix in http_request(),
        input in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let engine = http::Engine::new(http::Config { max_header_bytes: 128, ..http::Config::default() });
        let input = [prefix, input].concat();
        let whole = http_run(&engine, &input, None);
        let split = http_run(&engine, &input, Some(&cuts));
        prop_assert!(whole.starts_with(&split), "split {:?} is not a prefix of whole {:?}",
            String::from_utf8_lossy(&split), String::from_utf8_lossy(&whole));
    }
}
