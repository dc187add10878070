//! `GET /v1/events`: Server-Sent Events, one `block` event per committed block, with the
//! block's height as the event id.
//!
//! A client that reconnects with `Last-Event-ID: <height>` gets every block after that
//! height: first read from the ledger, then as the node commits them. A subscriber that falls
//! behind the node's channel (`Lagged`) or sees a gap reads the missed blocks from the
//! ledger, so no block is skipped and none is sent twice. Without `Last-Event-ID` the stream
//! starts with the next block committed. Streams end when the server stops; at most
//! `max_event_streams` are open at once, and a comment line every `event_keep_alive` keeps
//! idle ones alive.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aegis_storage::Ledger;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::error::ErrorBody;
use crate::model::BlockEventJson;
use crate::routes::{ClientApi, storage_error};
use crate::{ApiError, CommittedBlock};

/// Blocks read from the ledger at once while replaying.
pub const REPLAY_CHUNK_BLOCKS: u64 = 64;
/// Events queued for one client before the feeder waits for it to read.
pub const EVENT_QUEUE: usize = 64;

const _: () = assert!(REPLAY_CHUNK_BLOCKS <= aegis_storage::MAX_RANGE_BLOCKS);

/// The header a reconnecting client sends (the last event id it saw, a height).
const LAST_EVENT_ID: &str = "last-event-id";

/// Committed blocks as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(("Last-Event-ID" = Option<u64>, Header, description = "Resume after this height: every later block is sent, first from the ledger")),
    responses(
        (status = 200, content_type = "text/event-stream", body = String, description = "One event per committed block: `id: <height>`, `event: block`, `data: <BlockEvent JSON>` (height, hash, tx_count, tx_ids). Comment lines keep the stream alive."),
        (status = 400, description = "`Last-Event-ID` is not a height.", body = ErrorBody),
        (status = 503, description = "No consensus engine runs, or `max_event_streams` streams are open.", body = ErrorBody),
    )
)]
pub async fn events(
    State(api): State<Arc<ClientApi>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match headers.get(LAST_EVENT_ID) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID must be a block height".into())
                })?,
        ),
    };
    let node = api.status.require_node()?;
    let ledger = Arc::clone(api.status.require_ledger()?);
    let permit = Arc::clone(&api.event_streams)
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable {
            message: format!(
                "{} event streams are open, the most this node serves",
                api.limits.max_event_streams
            ),
            retry_after: Some(Duration::from_secs(5)),
        })?;
    // Subscribe before reading the ledger, so no block falls between the two.
    let blocks = node.subscribe();
    let last = match after {
        Some(height) => height,
        None => ledger.height().await.map_err(storage_error)?,
    };
    let (sender, receiver) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(feed(Feed {
        ledger,
        blocks,
        last,
        out: sender,
        shutdown: api.shutdown.clone(),
        _permit: permit,
    }));
    let mut response = Sse::new(EventStream(receiver))
        .keep_alive(KeepAlive::new().interval(api.limits.event_keep_alive))
        .into_response();
    // Reverse proxies (nginx) would otherwise buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One client's feeder: replays from the ledger, then follows the node.
struct Feed {
    ledger: Arc<dyn Ledger>,
    blocks: broadcast::Receiver<Arc<CommittedBlock>>,
    /// The height of the last event sent (or of the start point).
    last: u64,
    out: mpsc::Sender<BlockEventJson>,
    shutdown: CancellationToken,
    /// Held while the stream is open (`max_event_streams`).
    _permit: OwnedSemaphorePermit,
}

/// Why a feed ends: the client left, the server stops, the node's channel closed, or the
/// ledger failed (the client reconnects with `Last-Event-ID` and resumes).
struct Ended;

async fn feed(mut feed: Feed) {
    if replay(&mut feed, None).await.is_err() {
        return;
    }
    follow_node(feed).await;
}

/// Sends what the node announces, filling any gap from the ledger, until the stream ends.
async fn follow_node(mut feed: Feed) {
    loop {
        let received = tokio::select! {
            () = feed.shutdown.cancelled() => return,
            () = feed.out.closed() => return,
            received = feed.blocks.recv() => received,
        };
        let step = match received {
            Ok(block) => follow(&mut feed, &block).await,
            // Fell behind the node's channel: what was missed is in the ledger.
            Err(RecvError::Lagged(_)) => replay(&mut feed, None).await,
            Err(RecvError::Closed) => return,
        };
        if step.is_err() {
            return;
        }
    }
}

/// Sends `block` unless it was sent already, after any blocks missed before it.
async fn follow(feed: &mut Feed, block: &CommittedBlock) -> Result<(), Ended> {
    if block.height <= feed.last {
        return Ok(());
    }
    if block.height > feed.last + 1 {
        replay(feed, Some(block.height - 1)).await?;
    }
    let event = BlockEventJson {
        height: block.height,
        hash: block.hash,
        tx_count: u32::try_from(block.tx_ids.len()).unwrap_or(u32::MAX),
        tx_ids: block.tx_ids.clone(),
    };
    send(feed, &event).await
}

/// Sends every stored block after `feed.last`, up to `up_to` (or the ledger's tip).
async fn replay(feed: &mut Feed, up_to: Option<u64>) -> Result<(), Ended> {
    loop {
        let to = feed.last.saturating_add(REPLAY_CHUNK_BLOCKS);
        let to = up_to.map_or(to, |limit| to.min(limit));
        if to <= feed.last {
            return Ok(());
        }
        let blocks = feed
            .ledger
            .blocks(feed.last + 1, to)
            .await
            .map_err(|error| {
                // The client resumes with Last-Event-ID once the ledger answers again.
                aegis_telemetry::warn!(%error, "ledger read for an event stream failed; ending it");
                Ended
            })?;
        if blocks.is_empty() {
            return Ok(());
        }
        for stored in blocks {
            let columns = stored.columns;
            if columns.height != feed.last + 1 {
                aegis_telemetry::error!(
                    expected = feed.last + 1,
                    got = columns.height,
                    "ledger range read skipped a height; ending the event stream"
                );
                return Err(Ended);
            }
            let event = BlockEventJson {
                height: columns.height,
                hash: columns.hash,
                tx_count: columns.tx_count,
                tx_ids: columns.tx_ids,
            };
            send(feed, &event).await?;
        }
    }
}

async fn send(feed: &mut Feed, block: &BlockEventJson) -> Result<(), Ended> {
    debug_assert_eq!(block.height, feed.last + 1, "events go out in height order");
    tokio::select! {
        () = feed.shutdown.cancelled() => Err(Ended),
        sent = feed.out.send(block.clone()) => {
            sent.map_err(|_| Ended)?;
            feed.last = block.height;
            Ok(())
        }
    }
}

/// The response body's events, as the feeder queues them: `id: <height>`, `event: block`,
/// `data: <BlockEvent JSON>`.
struct EventStream(mpsc::Receiver<BlockEventJson>);

impl Stream for EventStream {
    type Item = Result<Event, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|block| {
            block.map(|block| {
                Event::default()
                    .id(block.height.to_string())
                    .event("block")
                    .json_data(&block)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use aegis_storage::fixtures::ChainFixture;
    use aegis_storage::{SqlStore, StoreConfig};
    use tokio::sync::Semaphore;

    use super::*;

    async fn ledger(dir: &tempfile::TempDir) -> Arc<SqlStore> {
        let config = StoreConfig::sqlite(dir.path().join("blockchain.db"));
        Arc::new(SqlStore::open(&config).await.unwrap())
    }

    fn announced(block: &aegis_types::Block) -> Arc<CommittedBlock> {
        Arc::new(CommittedBlock {
            height: block.height(),
            hash: block.hash(),
            tx_ids: block.tx_ids(),
        })
    }

    #[tokio::test]
    async fn a_subscriber_that_lags_reads_what_it_missed_from_the_ledger_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ledger(&dir).await;
        let mut fixture = ChainFixture::new(1, "c");
        let (node, blocks) = broadcast::channel(2);
        let (out, mut events) = mpsc::channel(EVENT_QUEUE);
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let mut feed = Feed {
            ledger: Arc::clone(&store) as Arc<dyn Ledger>,
            blocks,
            last: 0,
            out,
            shutdown: CancellationToken::new(),
            _permit: permit,
        };
        for (block, certificate) in fixture.next_blocks(2, 1, 8, 1) {
            store.append_block(&block, &certificate).await.unwrap();
        }
        assert!(replay(&mut feed, None).await.is_ok());
        // Six more commits while the subscriber is busy: its channel holds two.
        for (block, certificate) in fixture.next_blocks(6, 2, 8, 1) {
            store.append_block(&block, &certificate).await.unwrap();
            node.send(announced(&block)).unwrap();
        }
        drop(node);
        follow_node(feed).await;
        let mut heights = Vec::new();
        while let Ok(event) = events.try_recv() {
            heights.push(event.height);
        }
        assert_eq!(heights, (1..=8).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn a_gap_in_the_announcements_is_filled_from_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let store = ledger(&dir).await;
        let mut fixture = ChainFixture::new(1, "c");
        let (node, blocks) = broadcast::channel(16);
        let (out, mut events) = mpsc::channel(EVENT_QUEUE);
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let feed = Feed {
            ledger: Arc::clone(&store) as Arc<dyn Ledger>,
            blocks,
            last: 0,
            out,
            shutdown: CancellationToken::new(),
            _permit: permit,
        };
        let chain = fixture.next_blocks(4, 1, 8, 1);
        for (block, certificate) in &chain {
            store.append_block(block, certificate).await.unwrap();
        }
        // Only the first and last are announced (and the first twice).
        node.send(announced(&chain[0].0)).unwrap();
        node.send(announced(&chain[0].0)).unwrap();
        node.send(announced(&chain[3].0)).unwrap();
        drop(node);
        follow_node(feed).await;
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push((event.height, event.hash, event.tx_ids.len()));
        }
        let expected: Vec<_> = chain
            .iter()
            .map(|(block, _)| (block.height(), block.hash(), 1))
            .collect();
        assert_eq!(seen, expected);
    }
}
