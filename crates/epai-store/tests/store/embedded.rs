//! The embedded cluster: starts from nothing, restarts on existing data, refuses a second owner,
//! lets other commands attach, and needs nothing but the installed server binaries.

use std::path::Path;

use epai_store::embedded::{ClusterOptions, EmbeddedCluster, EmbeddedError};
use epai_store::{Store, StoreOptions};

fn options(dir: &Path) -> ClusterOptions {
    ClusterOptions::new(dir.join("state"))
}

async fn connect(cluster: &EmbeddedCluster) -> Store {
    cluster.ensure_database().await.unwrap();
    epai_store::migrate(&cluster.target()).await.unwrap();
    Store::connect(&cluster.target(), &StoreOptions::default()).unwrap()
}

#[tokio::test]
async fn starts_from_nothing_then_restarts_on_its_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());

    let cluster = tokio::task::spawn_blocking({
        let opts = opts.clone();
        move || EmbeddedCluster::start(&opts)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(cluster.is_owner());
    assert!(cluster.pgdata().join("PG_VERSION").exists());
    let store = connect(&cluster).await;
    assert!(store.migration_status().await.unwrap().is_current());
    let partner = crate::support::create_partner(&store, "Persistent").await;
    let role = store.session_role().await.unwrap();
    assert!(!role.superuser && !role.bypasses_rls, "{role:?}");
    drop(store);
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !opts.data_dir.join("pgdata/postmaster.pid").exists(),
        "stopping the cluster shuts PostgreSQL down"
    );

    let restarted = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&opts))
        .await
        .unwrap()
        .unwrap();
    let store = connect(&restarted).await;
    let found = store
        .as_service_role(async |s| s.find_partner(&partner.id.to_string()).await)
        .await
        .unwrap();
    assert_eq!(found.name.as_deref(), Some("Persistent"));
    drop(store);
    tokio::task::spawn_blocking(move || restarted.stop())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_second_owner_is_refused_but_commands_may_attach() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let owner = tokio::task::spawn_blocking({
        let opts = opts.clone();
        move || EmbeddedCluster::start(&opts)
    })
    .await
    .unwrap()
    .unwrap();

    let second = EmbeddedCluster::start(&opts).unwrap_err();
    assert!(matches!(second, EmbeddedError::InUse { .. }), "{second}");
    assert!(
        second
            .to_string()
            .contains(&format!("pid {}", std::process::id())),
        "the error names the owner: {second}"
    );

    let attached = EmbeddedCluster::start_or_attach(&opts).unwrap();
    assert!(!attached.is_owner());
    let store = connect(&attached).await;
    assert!(store.migration_status().await.unwrap().is_current());
    drop(store);
    attached.stop().unwrap();

    // Stopping an attached handle leaves the owner's cluster running.
    let still_up = connect(&owner).await;
    assert!(still_up.migration_status().await.unwrap().is_current());
    drop(still_up);
    tokio::task::spawn_blocking(move || owner.stop())
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn a_directory_that_is_not_a_cluster_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    std::fs::create_dir_all(opts.data_dir.join("pgdata")).unwrap();
    std::fs::write(opts.data_dir.join("pgdata/precious.txt"), "keep me").unwrap();
    let err = EmbeddedCluster::start(&opts).unwrap_err();
    assert!(matches!(err, EmbeddedError::NotADataDirectory(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(opts.data_dir.join("pgdata/precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn without_server_binaries_the_error_names_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.bindir = Some(dir.path().join("no-such-bin"));
    let err = EmbeddedCluster::start(&opts).unwrap_err();
    assert!(
        err.to_string().contains("apt-get install postgresql"),
        "{err}"
    );
    assert!(
        !opts.data_dir.join("pgdata").exists(),
        "nothing was created"
    );
}
