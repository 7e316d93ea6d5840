//! Prints the change key of every synced object in a directory of manifests, the way k8s-sync
//! computes it: `cargo run --example change_key -- fixtures/snapshots/primary`.

use k8s_sync::endpoint::directory;
use k8s_sync::scope::Scope;
use k8s_sync::snapshot::Snapshot;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let listing = directory::read(dir.as_ref())?;
    let snapshot = Snapshot::build(listing.source, listing.objects, &Scope::default())?;
    for (reference, entry) in &snapshot.objects {
        println!("{}  {reference}", entry.change_key);
    }
    println!("{}  (root hash)", snapshot.root_hash());
    Ok(())
}
