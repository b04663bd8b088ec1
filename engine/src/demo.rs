//! `synchub demo`: a realistic shop data set in SQLite, synced by the
//! pipelines in `pipelines/demo/` into a SQLite warehouse, then verified.
//! Needs no server.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use crate::error::EngineError;

/// The demo pipelines, embedded so the binary runs the demo from anywhere.
pub const DEMO_PIPELINES: &[(&str, &str)] = &[
    (
        "users.yaml",
        include_str!("../../pipelines/demo/users.yaml"),
    ),
    (
        "orders.yaml",
        include_str!("../../pipelines/demo/orders.yaml"),
    ),
    (
        "orders_stage_form.yaml",
        include_str!("../../pipelines/demo/orders_stage_form.yaml"),
    ),
    (
        "user_daily_orders_aggregate.yaml",
        include_str!("../../pipelines/demo/user_daily_orders_aggregate.yaml"),
    ),
];

const DEMO_DATASTORES: &str = "\
# Written by `synchub demo`.
datastores:
  demo_source:
    type: sqlite
    connection:
      path: source.db
  demo_warehouse:
    type: sqlite
    connection:
      path: warehouse.db
";

/// The files of a demo folder.
pub struct DemoLayout {
    pub dir: PathBuf,
    pub source_db: PathBuf,
    pub warehouse_db: PathBuf,
    pub state_dir: PathBuf,
    pub pipelines: Vec<PathBuf>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::State {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes a fresh demo folder: datastores, pipelines and the source data.
/// Any earlier demo databases and state in `dir` are replaced.
pub fn prepare(dir: &Path, orders: u64) -> Result<DemoLayout, EngineError> {
    let pipelines_dir = dir.join("pipelines");
    std::fs::create_dir_all(&pipelines_dir).map_err(|e| io_err(&pipelines_dir, e))?;
    let layout = DemoLayout {
        dir: dir.to_path_buf(),
        source_db: dir.join("source.db"),
        warehouse_db: dir.join("warehouse.db"),
        state_dir: dir.join("state"),
        pipelines: DEMO_PIPELINES
            .iter()
            .map(|(name, _)| pipelines_dir.join(name))
            .collect(),
    };
    for f in [&layout.source_db, &layout.warehouse_db] {
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", f.display()));
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
        }
    }
    if layout.state_dir.exists() {
        std::fs::remove_dir_all(&layout.state_dir).map_err(|e| io_err(&layout.state_dir, e))?;
    }
    let ds = dir.join("datastores.yaml");
    std::fs::write(&ds, DEMO_DATASTORES).map_err(|e| io_err(&ds, e))?;
    for ((_, text), path) in DEMO_PIPELINES.iter().zip(&layout.pipelines) {
        std::fs::write(path, text).map_err(|e| io_err(path, e))?;
    }
    generate(&layout.source_db, orders).map_err(|e| io_err(&layout.source_db, e))?;
    Ok(layout)
}

/// splitmix64: a tiny deterministic generator, so every demo has the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const FIRST: &[&str] = &[
    "Ana", "Björn", "Chloé", "Dmitri", "Eun-ji", "Fatima", "Giulia", "Hiroshi", "Ίρις", "José",
    "Kwame", "Léa", "Mateo", "Nadia", "Olu", "Priya", "Quinn", "Rūta", "Søren", "Zoë",
];
const LAST: &[&str] = &[
    "Almeida",
    "Brown",
    "Chen",
    "Dubois",
    "Eriksen",
    "García",
    "Hoffmann",
    "Ivanova",
    "Jones",
    "Kowalski",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Patel",
    "Rossi",
    "Smith",
    "Tanaka",
    "Øvergaard",
];
const COUNTRIES: &[&str] = &[
    "US", "DE", "FR", "GB", "JP", "BR", "IN", "ES", "IT", "NO", "KR",
];
const STATUSES: &[&str] = &[
    "pending",
    "paid",
    "shipped",
    "delivered",
    "refunded",
    "cancelled",
];
const NOTES: &[&str] = &[
    "leave at the door",
    "gift wrap, please 🎁",
    "call before delivery",
    "fragile — handle with care",
    "",
];

/// Creates `users` (orders / 10 of them) and `orders` in a new SQLite file,
/// in the text formats SyncHub's SQLite connector reads and writes.
pub fn generate(path: &Path, orders: u64) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         CREATE TABLE users (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
            country TEXT, is_active INTEGER NOT NULL, created_at TEXT NOT NULL);
         CREATE TABLE orders (
            id INTEGER PRIMARY KEY, user_id INTEGER, status TEXT NOT NULL,
            amount TEXT NOT NULL, discount TEXT, note TEXT,
            order_date TEXT NOT NULL, updated_at TEXT NOT NULL);",
    )?;
    let users = (orders / 10).max(1);
    let mut rng = Rng(42);
    // 2024-01-01T00:00:00Z in seconds, and two years of spread.
    let epoch_2024 = 1_704_067_200i64;
    let span = 2 * 365 * 86_400i64;
    let tx = conn.transaction()?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO users (id, name, email, country, is_active, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for id in 1..=users as i64 {
            let first = FIRST[rng.below(FIRST.len() as u64) as usize];
            let last = LAST[rng.below(LAST.len() as u64) as usize];
            let country = if rng.below(50) == 0 {
                None
            } else {
                Some(COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize])
            };
            let created = epoch_2024 - 86_400 * 365 + (rng.below(span as u64) as i64);
            let micros = rng.below(1_000_000);
            ins.execute(params![
                id,
                format!("{first} {last}"),
                format!("user{id}@example.com"),
                country,
                (rng.below(10) != 0) as i64,
                format!("{}.{micros:06}+00:00", fmt_secs(created)),
            ])?;
        }
        let mut ins = tx.prepare(
            "INSERT INTO orders (id, user_id, status, amount, discount, note, order_date, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for id in 1..=orders as i64 {
            // A few orders belong to deleted users: the left join gives NULL country.
            let user_id = if rng.below(200) == 0 {
                None
            } else {
                Some(
                    1 + rng.below(users) as i64
                        + if rng.below(500) == 0 { users as i64 } else { 0 },
                )
            };
            let cents = 100 + rng.below(500_000) as i64;
            let discount = match rng.below(4) {
                0 => Some(format!("{}.{:02}", (cents / 10) / 100, (cents / 10) % 100)),
                _ => None,
            };
            let note = match rng.below(8) {
                0 => Some(NOTES[rng.below(NOTES.len() as u64) as usize]),
                _ => None,
            };
            let ordered = epoch_2024 + rng.below(span as u64) as i64;
            let updated = ordered + rng.below(30 * 86_400) as i64;
            ins.execute(params![
                id,
                user_id,
                STATUSES[rng.below(STATUSES.len() as u64) as usize],
                format!("{}.{:02}", cents / 100, cents % 100),
                discount,
                note,
                &fmt_secs(ordered)[..10],
                format!("{}.{:06}", fmt_secs(updated), rng.below(1_000_000)),
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn fmt_secs(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
