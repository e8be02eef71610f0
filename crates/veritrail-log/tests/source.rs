//! The store-neutral API ([`LogSource`], [`verify_source`]) over the directory log gives the
//! same proofs and the same verdict as the directory's own code.

use veritrail_log::source::{LogSource, verify_source};
use veritrail_log::verify::{VerifyError, VerifyOptions, verify_dir};
use veritrail_log::{Log, LogOptions, NoteSigner};

fn log_with(n: u64, dir: &std::path::Path) -> (Log, NoteSigner, Vec<String>) {
    let signer = NoteSigner::generate("example.com/source-test").unwrap();
    let mut log = Log::open(dir, signer.clone(), LogOptions::default()).unwrap();
    let mut checkpoints = Vec::new();
    for i in 0..n {
        log.append(format!("{{\"i\":{i}}}").as_bytes()).unwrap();
        if i % 97 == 0 {
            checkpoints.push(log.checkpoint().unwrap());
        }
    }
    checkpoints.push(log.checkpoint().unwrap());
    (log, signer, checkpoints)
}

#[test]
fn proofs_and_verdict_match_the_directory_code() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, signer, checkpoints) = log_with(1000, tmp.path());
    let src: &dyn LogSource = &log;
    for (index, size) in [(0, 1), (5, 1000), (999, 1000), (511, 512), (300, 777)] {
        assert_eq!(
            src.inclusion_proof(index, size).unwrap(),
            log.inclusion_proof(index, size).unwrap()
        );
    }
    for (old, new) in [(1, 1000), (97, 98), (512, 1000), (1000, 1000)] {
        assert_eq!(
            src.consistency_proof(old, new).unwrap(),
            log.consistency_proof(old, new).unwrap()
        );
    }
    assert!(src.inclusion_proof(0, 1001).is_err());
    assert_eq!(src.root_at(777).unwrap(), log.root_at(777).unwrap());

    let opts = VerifyOptions::default().against(vec![checkpoints[3].clone()]);
    let generic = verify_source(src, &signer.verifier(), &opts).unwrap();
    let dir = verify_dir(tmp.path(), &signer.verifier(), &opts).unwrap();
    assert_eq!((generic.records, generic.root), (dir.records, dir.root));
    assert_eq!(generic.checkpoints_checked, checkpoints.len() + 2); // + the empty tree, latest
    assert_eq!(generic.against_checked, 1);

    // Another key is refused; a checkpoint of another log is not extended.
    let other = NoteSigner::generate("example.com/source-test").unwrap();
    assert!(matches!(
        verify_source(src, &other.verifier(), &VerifyOptions::default()),
        Err(VerifyError::WrongKey { .. })
    ));
    let tmp2 = tempfile::tempdir().unwrap();
    let (other_log, _, _) = log_with(10, tmp2.path());
    drop(other_log);
    let foreign = VerifyOptions::default().against(vec![
        std::fs::read_to_string(tmp2.path().join("checkpoint")).unwrap(),
    ]);
    assert!(matches!(
        verify_source(src, &signer.verifier(), &foreign),
        Err(VerifyError::Against { position: 1, .. })
    ));
}
