//! Key custody against a real SoftHSM2 token. SoftHSM2 reads its configuration once per
//! process, so each test re-runs itself in a child process with its own token directory
//! (made by hsm/create-token): tests run in parallel safely and never touch a global
//! token store.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use engine::SecretKey;
use keys::{Hsm, HsmConfig, KeyRef, KeysError, WrapMethod};

mod common;

use common::hsm::{LABEL, MODULE, with_token, with_token_wrapping};

fn key(b: u8) -> SecretKey {
    SecretKey::from_bytes([b; 32])
}

#[test]
fn root_keys_never_leave_the_hsm() {
    with_token("root_keys_never_leave_the_hsm", |t| {
        use cryptoki::object::{Attribute, AttributeType};
        let m = t.manager(Duration::from_secs(60));
        let a = m.create("alpha").unwrap();
        let b = m.create("beta").unwrap();
        let ida = keys::KeyId::parse(&a.id).unwrap().object(1).id;
        let idb = keys::KeyId::parse(&b.id).unwrap().object(1).id;
        let attrs = m
            .hsm()
            .root_attributes(
                &ida,
                &[
                    AttributeType::Value,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Encrypt,
                ],
            )
            .unwrap();
        assert!(!attrs.iter().any(|a| matches!(a, Attribute::Value(_))), "CKA_VALUE was readable");
        assert!(attrs.contains(&Attribute::Sensitive(true)));
        assert!(attrs.contains(&Attribute::Extractable(false)));
        assert!(attrs.contains(&Attribute::Encrypt(false)));
        assert!(!m.hsm().root_is_wrappable(&ida, &idb).unwrap(), "a root key could be wrapped out");

        // An outside witness: OpenSC's pkcs11-tool sees the same restrictions.
        let tool = |args: &[&str]| {
            Command::new("pkcs11-tool")
                .args(["--module", MODULE, "--token-label", LABEL, "--login", "--pin", &t.pin()])
                .args(args)
                .output()
                .unwrap()
        };
        let listed = tool(&["--list-objects", "--type", "secrkey"]);
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.status.success(), "{text}");
        assert!(text.contains("never extractable") && text.contains("sensitive"), "{text}");
        assert!(text.contains("wrap") && !text.contains("encrypt"), "{text}");
        let label = format!("cipherstore:{}:v1", a.id);
        let read = tool(&["--read-object", "--type", "secrkey", "--label", &label]);
        assert!(!read.status.success(), "pkcs11-tool read the root key's value");
    });
}

#[test]
fn wrap_and_unwrap_round_trip_and_reject_wrong_keys_and_tampering() {
    with_token("wrap_and_unwrap_round_trip_and_reject_wrong_keys_and_tampering", |t| {
        let m = t.manager(Duration::from_secs(60));
        let a = keys::KeyId::parse(&m.create("a").unwrap().id).unwrap().object(1).id;
        let b = keys::KeyId::parse(&m.create("b").unwrap().id).unwrap().object(1).id;
        let hsm = m.hsm();
        let kwp = WrapMethod::AesKeyWrapPad;
        let wrapped = hsm.wrap(&a, kwp, &key(9), b"ctx").unwrap();
        assert_eq!(wrapped.len(), 40, "RFC 5649 wraps 32 bytes into 40");
        assert!(!wrapped.windows(32).any(|w| w == [9u8; 32]));
        assert_eq!(hsm.unwrap(&a, kwp, &wrapped, b"ctx", "a").unwrap(), key(9));
        assert!(matches!(hsm.unwrap(&b, kwp, &wrapped, b"ctx", "b"), Err(KeysError::UnwrapFailed(_))));
        let mut bad = wrapped.clone();
        bad[7] ^= 1;
        assert!(matches!(hsm.unwrap(&a, kwp, &bad, b"ctx", "a"), Err(KeysError::UnwrapFailed(_))));
        assert!(hsm.unwrap(&a, kwp, &wrapped[..39], b"ctx", "a").is_err());
    });
}

#[test]
fn the_whole_lifecycle_behaves_as_key_protect() {
    with_token("the_whole_lifecycle_behaves_as_key_protect", lifecycle);
}

#[test]
fn the_lifecycle_holds_wrapping_with_rfc_3394() {
    with_token_wrapping(
        "the_lifecycle_holds_wrapping_with_rfc_3394",
        Some(WrapMethod::AesKeyWrap),
        lifecycle,
    );
}

#[test]
fn the_lifecycle_holds_wrapping_with_aes_gcm() {
    with_token_wrapping("the_lifecycle_holds_wrapping_with_aes_gcm", Some(WrapMethod::AesGcm), lifecycle);
}

#[test]
fn the_lifecycle_holds_wrapping_with_cbc_and_hmac() {
    with_token_wrapping(
        "the_lifecycle_holds_wrapping_with_cbc_and_hmac",
        Some(WrapMethod::AesCbcHmacSha256),
        lifecycle,
    );
}

/// Key Protect's lifecycle on the token, by whichever method the child's configuration
/// forces: create, bucket keys, rotate, disable/enable, delete, import, restore, audit.
fn lifecycle(t: &common::hsm::Token) {
    {
        let m = t.manager(Duration::from_secs(60));
        let forced = t.config().wrap.unwrap_or_default();
        assert_eq!(m.metrics().wrap_method, forced);
        let root = m.create("primary").unwrap();
        m.create_bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap();
        let before = m.bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap();

        // Rotate: new version, bucket key rewrapped, the same bucket key (no data rewritten).
        let rotated = m.rotate(&KeyRef::parse("primary"), None).unwrap();
        assert_eq!(rotated.version, 2);
        let fresh = t.manager(Duration::from_secs(60));
        assert_eq!(
            fresh.bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap(),
            before,
            "old data must stay readable"
        );
        assert_eq!(fresh.metrics().hsm_unwraps, 1);

        // Disable refuses at once through this manager; enable restores.
        m.disable(&KeyRef::parse(&root.id)).unwrap();
        assert!(matches!(m.bucket_key("photos", &KeyRef::parse(&root.crn)), Err(KeysError::KeySuspended(_))));
        assert!(matches!(
            m.create_bucket_key("more", &KeyRef::parse("primary")),
            Err(KeysError::KeySuspended(_))
        ));
        m.enable(&KeyRef::parse(&root.id)).unwrap();
        assert_eq!(m.bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap(), before);

        // Delete: refused while a bucket uses it, named; forced: data unreadable.
        match m.delete(&KeyRef::parse("primary"), false) {
            Err(KeysError::KeyInUse { buckets, .. }) => assert_eq!(buckets, vec!["photos".to_owned()]),
            other => panic!("expected KeyInUse, got {other:?}"),
        }
        m.delete(&KeyRef::parse("primary"), true).unwrap();
        assert!(matches!(m.bucket_key("photos", &KeyRef::parse(&root.crn)), Err(KeysError::KeyDestroyed(_))));
        let other = t.manager(Duration::from_secs(60));
        assert!(
            other.bucket_key("photos", &KeyRef::parse(&root.crn)).is_err(),
            "a new process must not read a shredded bucket"
        );
        let restored = m.restore(&KeyRef::parse("primary"), Some(&key(1)));
        assert!(
            matches!(restored, Err(KeysError::Refused(ref why)) if why.contains("material was destroyed")),
            "{restored:?}"
        );

        // Imported keys: delete, then restore with the same material brings data back.
        let imported = m.import("byok", &key(42)).unwrap();
        assert_eq!(imported.versions[0].kcv.as_deref(), Some(keys::id::key_check_value(&key(42)).as_str()));
        m.create_bucket_key("ledger", &KeyRef::parse("byok")).unwrap();
        let ledger = m.bucket_key("ledger", &KeyRef::parse("byok")).unwrap();
        // Another manager with no bucket key cache, holding the old object's handle.
        let watcher = t.manager(Duration::ZERO);
        assert_eq!(watcher.bucket_key("ledger", &KeyRef::parse("byok")).unwrap(), ledger);
        m.delete(&KeyRef::parse("byok"), true).unwrap();
        assert!(m.bucket_key("ledger", &KeyRef::parse("byok")).is_err());
        assert!(matches!(
            watcher.bucket_key("ledger", &KeyRef::parse("byok")),
            Err(KeysError::KeyDestroyed(_))
        ));
        assert!(
            matches!(m.restore(&KeyRef::parse("byok"), Some(&key(43))), Err(KeysError::Refused(ref why)) if why.contains("key check value"))
        );
        m.restore(&KeyRef::parse("byok"), Some(&key(42))).unwrap();
        assert_eq!(
            t.manager(Duration::from_secs(60)).bucket_key("ledger", &KeyRef::parse("byok")).unwrap(),
            ledger
        );
        assert_eq!(
            watcher.bucket_key("ledger", &KeyRef::parse("byok")).unwrap(),
            ledger,
            "a stale object handle is looked up again"
        );
        assert!(m.rotate(&KeyRef::parse("byok"), None).is_err(), "imported keys rotate with new material");
        m.rotate(&KeyRef::parse("byok"), Some(&key(44))).unwrap();
        assert_eq!(
            t.manager(Duration::from_secs(60)).bucket_key("ledger", &KeyRef::parse("byok")).unwrap(),
            ledger
        );

        // The audit trail has every change and refusal, and no key material.
        let events = m.audit_log().read_all().unwrap();
        let actions: Vec<String> = events
            .iter()
            .map(|e| format!("{}:{}", e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
            .collect();
        for want in [
            "key.create:success",
            "key.rotate:success",
            "key.disable:success",
            "key.unwrap:refused",
            "key.wrap:refused",
            "key.enable:success",
            "key.delete:success",
            "key.restore:refused",
            "key.import:success",
            "key.restore:success",
        ] {
            assert!(actions.iter().any(|a| a == want), "audit lacks {want}: {actions:?}");
        }
        let delete = events.iter().find(|e| e["action"] == "key.delete").unwrap();
        assert_eq!(delete["buckets"], serde_json::json!(["photos"]));
        let log = std::fs::read_to_string(m.audit_log().path()).unwrap();
        let state = std::fs::read_to_string(t.dir.join("keys/state.json")).unwrap();
        for secret in [before.expose().as_slice(), ledger.expose().as_slice(), &[42u8; 32], &[44u8; 32]] {
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!log.contains(&hex) && !state.contains(&hex), "key material on disk");
        }
        let shown = m.show(&KeyRef::parse("byok")).unwrap();
        assert_eq!(shown.wrap_method, forced);
        assert!(shown.versions.iter().all(|v| v.method == forced), "{:?}", shown.versions);
        assert!(state.contains(&format!("\"method\": \"{}\"", forced.name())), "recorded in the state");
    }
    key_service_actions(t);
}

/// What the key service asks of the manager, on every wrapping method: DEKs wrapped,
/// unwrapped across a rotation (with a rewrapped ciphertext) and bound to their AAD;
/// deletion that keeps the material until purged; dual authorization by two identities.
fn key_service_actions(t: &common::hsm::Token) {
    use keys::policy::PolicyChange;
    let m = t.manager(Duration::from_secs(60));
    let k = KeyRef::parse(&m.create("service-root").unwrap().id);
    let aad = vec!["tenant=1".to_owned()];
    let w = m.wrap_dek(&k, Some(b"an 18-byte secret!"), &aad).unwrap();
    let hsm_calls = m.metrics().hsm_wraps;
    let u = m.unwrap_dek(&k, &w.ciphertext, &aad).unwrap();
    assert_eq!(
        (u.plaintext.as_slice(), u.version, u.rewrapped.is_none()),
        (b"an 18-byte secret!".as_slice(), 1, true)
    );
    assert_eq!(m.metrics().hsm_wraps, hsm_calls, "an unwrap of the current version wraps nothing");
    assert!(matches!(m.unwrap_dek(&k, &w.ciphertext, &[]), Err(KeysError::UnwrapFailed(_))), "other AAD");
    let generated = m.wrap_dek(&k, None, &[]).unwrap();
    assert_eq!(generated.generated.as_ref().map(|g| g.len()), Some(32));
    m.rotate(&k, None).unwrap();
    let u = m.unwrap_dek(&k, &w.ciphertext, &aad).unwrap();
    let again = u.rewrapped.expect("rewrapped by version 2");
    assert_eq!((u.version, again.version), (1, 2));
    let u2 = m.unwrap_dek(&k, &again.ciphertext, &aad).unwrap();
    assert_eq!((u2.plaintext.as_slice(), u2.rewrapped.is_none()), (b"an 18-byte secret!".as_slice(), true));
    let (rewrapped, old) = m.rewrap_dek(&k, &w.ciphertext, &aad).unwrap();
    assert_eq!((old, rewrapped.version), (1, 2));
    // Restorable deletion: refused at once, material kept, restored without it, purged.
    m.delete_restorable(&k, false).unwrap();
    assert!(matches!(m.wrap_dek(&k, None, &[]), Err(KeysError::KeyDestroyed(_))));
    assert!(m.purge(&k, Duration::from_secs(3600)).is_err(), "purged before its wait");
    m.restore(&k, None).unwrap();
    assert_eq!(
        m.unwrap_dek(&k, &again.ciphertext, &aad).unwrap().plaintext.as_slice(),
        b"an 18-byte secret!"
    );
    // Dual authorization: two identities, the authorizer not alone.
    m.set_key_policy(&k, PolicyChange::DualAuthDelete(true)).unwrap();
    assert!(matches!(
        keys::audit::as_initiator("alice", || m.delete_restorable(&k, false)),
        Err(KeysError::NotAuthorized(_))
    ));
    keys::audit::as_initiator("alice", || m.authorize_deletion(&k)).unwrap();
    assert!(matches!(
        keys::audit::as_initiator("alice", || m.delete_restorable(&k, false)),
        Err(KeysError::NotAuthorized(_))
    ));
    keys::audit::as_initiator("bob", || m.delete_restorable(&k, false)).unwrap();
    m.purge(&k, Duration::ZERO).unwrap();
    assert!(matches!(m.show(&k), Err(KeysError::KeyNotFound(_))), "purged: forgotten");
    let KeyRef::Id(id) = &k else { panic!("made by id") };
    for version in [1, 2] {
        let gone =
            m.hsm().root_attributes(&id.object(version).id, &[cryptoki::object::AttributeType::Sensitive]);
        assert!(gone.is_err(), "purging destroys version {version} in the HSM: {gone:?}");
    }
}

#[test]
fn keys_of_buckets_under_object_lock_are_neither_deleted_nor_disabled() {
    with_token("keys_of_buckets_under_object_lock_are_neither_deleted_nor_disabled", |t| {
        let m = t.manager(Duration::from_secs(60));
        let root = m.create("locked-root").unwrap();
        m.create_bucket_key("vault", &KeyRef::parse(&root.crn)).unwrap();
        m.retain_bucket("vault").unwrap();
        m.retain_bucket("vault").unwrap();
        // A binding made after the bucket was retained is covered too.
        let later = m.create("later-root").unwrap();
        m.create_bucket_key("vault", &KeyRef::parse(&later.crn)).unwrap();
        for key in ["locked-root", "later-root"] {
            for refused in [
                m.delete(&KeyRef::parse(key), true),
                m.delete(&KeyRef::parse(key), false),
                m.disable(&KeyRef::parse(key)),
            ] {
                match refused {
                    Err(KeysError::Retained { buckets, .. }) => assert_eq!(buckets, vec!["vault".to_owned()]),
                    other => panic!("expected Retained, got {other:?}"),
                }
            }
        }
        assert_eq!(m.show(&KeyRef::parse("locked-root")).unwrap().retained, vec!["vault".to_owned()]);
        assert_eq!(m.rotate(&KeyRef::parse("locked-root"), None).unwrap().version, 2, "rotation still works");
        assert!(
            m.bucket_key("vault", &KeyRef::parse(&root.crn)).is_ok(),
            "nothing was shredded or suspended"
        );
        let audit = m.audit_log().read_all().unwrap();
        let failures: Vec<_> = audit.iter().filter(|e| e["outcome"] == "failure").collect();
        assert_eq!(failures.len(), 6, "every refusal is audited");
        assert!(
            failures.iter().all(|e| e["buckets"] == serde_json::json!(["vault"]) && e["reason"].is_string())
        );
        let retained = audit.iter().filter(|e| e["action"] == "key.retain").count();
        assert_eq!(retained, 1, "retained once, audited once");
        // Another process sees the same state; once the bucket is gone the key deletes.
        let other = t.manager(Duration::from_secs(60));
        assert!(matches!(other.delete(&KeyRef::parse("locked-root"), true), Err(KeysError::Retained { .. })));
        m.remove_bucket_key("vault").unwrap();
        m.delete(&KeyRef::parse("locked-root"), true).unwrap();
        m.disable(&KeyRef::parse("later-root")).unwrap();
        // The first write of an Object Lock bucket under a key marks it retained, should
        // Object Lock have been enabled where no HSM was configured.
        let third = m.create("third-root").unwrap();
        m.bucket_key_for_write("late-vault", &KeyRef::parse(&third.crn), true).unwrap();
        assert_eq!(m.show(&KeyRef::parse("third-root")).unwrap().retained, vec!["late-vault".to_owned()]);
        assert!(matches!(m.delete(&KeyRef::parse("third-root"), true), Err(KeysError::Retained { .. })));
        m.bucket_key_for_write("open", &KeyRef::parse(&third.crn), false).unwrap();
        assert_eq!(
            m.show(&KeyRef::parse("third-root")).unwrap().retained,
            vec!["late-vault".to_owned()],
            "not every bucket"
        );
    });
}

#[test]
fn many_threads_share_the_session_pool() {
    with_token("many_threads_share_the_session_pool", |t| {
        let m = t.manager(Duration::from_secs(60));
        let id = keys::KeyId::parse(&m.create("pool").unwrap().id).unwrap().object(1).id;
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let (m, id) = (&m, &id);
                s.spawn(move || {
                    for j in 0..100u8 {
                        let k = SecretKey::from_bytes([i.wrapping_mul(31) ^ j; 32]);
                        let kwp = WrapMethod::AesKeyWrapPad;
                        let w = m.hsm().wrap(id, kwp, &k, b"pool").unwrap();
                        assert_eq!(m.hsm().unwrap(id, kwp, &w, b"pool", "pool").unwrap(), k);
                    }
                });
            }
        });
        assert_eq!(m.metrics().hsm_wraps, 800);
        assert_eq!(m.metrics().hsm_unwraps, 800);
        assert_eq!(m.metrics().hsm_failures, 0);
    });
}

#[test]
fn bad_module_token_and_pin_each_give_one_clear_error() {
    with_token("bad_module_token_and_pin_each_give_one_clear_error", |t| {
        let err = |c: HsmConfig| Hsm::open(&c).err().map(|e| e.to_string()).unwrap_or_default();
        let e = err(HsmConfig::new(Path::new("/nonexistent/libpkcs11.so"), LABEL, "1234"));
        assert!(e.contains("cannot load the PKCS#11 module /nonexistent/libpkcs11.so"), "{e}");
        let e = err(HsmConfig::new(Path::new(MODULE), "no-such-token", &t.pin()));
        assert!(e.contains("no initialised token labelled \"no-such-token\""), "{e}");
        let e = err(HsmConfig::new(Path::new(MODULE), LABEL, "wrong-pin"));
        assert!(e.contains("refused the PIN"), "{e}");
        assert!(!e.contains("wrong-pin"), "the PIN must not appear in errors");
        assert!(Hsm::open(&t.config()).is_ok());

        // The CLI says the same in one line, with a non-zero exit.
        let cli = |envs: &[(&str, &str)]| {
            let out = Command::new(env!("CARGO_BIN_EXE_cipherstore"))
                .args(["keys", "--keys-dir"])
                .arg(t.dir.join("cli-keys"))
                .arg("list")
                .env_remove("CIPHERSTORE_HSM_URI")
                .env_remove("CIPHERSTORE_HSM_PIN_FILE")
                .envs(envs.iter().copied())
                .output()
                .unwrap();
            assert!(!out.status.success());
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(text.lines().count(), 1, "{text}");
            text
        };
        let pin = t.pin();
        assert!(
            cli(&[
                ("CIPHERSTORE_PKCS11_MODULE", "/nope.so"),
                ("CIPHERSTORE_HSM_TOKEN", LABEL),
                ("CIPHERSTORE_HSM_PIN", &pin)
            ])
            .contains("cannot load the PKCS#11 module /nope.so")
        );
        assert!(
            cli(&[("CIPHERSTORE_HSM_TOKEN", "missing"), ("CIPHERSTORE_HSM_PIN", &pin)])
                .contains("no initialised token")
        );
        assert!(
            cli(&[("CIPHERSTORE_HSM_TOKEN", LABEL), ("CIPHERSTORE_HSM_PIN", "0000")])
                .contains("refused the PIN")
        );
        assert!(cli(&[("CIPHERSTORE_HSM_TOKEN", LABEL)]).contains("no PIN"));
    });
}

#[test]
fn ten_thousand_objects_in_one_bucket_make_one_hsm_call() {
    with_token("ten_thousand_objects_in_one_bucket_make_one_hsm_call", |t| {
        use engine::{Backend, CustomerKey, Opener, SealSpec, Sealer, Sealing};
        use pipeline::units::InMemory;
        let setup = t.manager(Duration::from_secs(60));
        let root = setup.create("bulk-root").unwrap();
        setup.create_bucket_key("bulk", &KeyRef::parse(&root.crn)).unwrap();
        // A manager with a cold cache, as after a restart.
        let m = t.manager(Duration::from_secs(60));
        let plain = vec![7u8; 1024];
        let mut after_first = 0;
        let mut sample = None;
        for i in 0..10_000 {
            let key = CustomerKey {
                key: m.bucket_key("bulk", &KeyRef::parse(&root.crn)).unwrap(),
                context: b"bulk".to_vec(),
            };
            let spec = SealSpec::new(Sealing::SseKp { key, crn: root.crn.clone() }, Backend::Accelerated);
            let sealer = Sealer::new(&spec, Some(plain.len() as u64)).unwrap();
            let mut object = InMemory::new(&sealer.layout(plain.len() as u64).unwrap(), &plain);
            object.seal(&sealer, false).unwrap();
            if i == 0 {
                after_first = m.metrics().hsm_unwraps + m.metrics().hsm_wraps;
                sample = Some((sealer.header_bytes().to_vec(), object, spec));
            }
        }
        let metrics = m.metrics();
        println!(
            "HSM calls for 10,000 objects: first object {after_first}, total {}",
            metrics.hsm_unwraps + metrics.hsm_wraps
        );
        assert_eq!(after_first, 1, "the first object unwraps the bucket key once");
        assert_eq!(metrics.hsm_unwraps + metrics.hsm_wraps, 1, "no HSM call after the first object");
        assert_eq!(metrics.cache_hits, 9_999);
        let (header, mut object, spec) = sample.unwrap();
        let opener = Opener::new(&header, spec.protection.key(), Backend::Portable).unwrap();
        object.open(&opener, false).unwrap();
        assert_eq!(object.data, plain);
    });
}

#[test]
fn sse_kp_files_follow_the_root_key_state_through_the_cli() {
    with_token("sse_kp_files_follow_the_root_key_state_through_the_cli", |t| {
        let dir = t.dir.clone();
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_cipherstore"))
                .args(args)
                .env("CIPHERSTORE_KEYS_DIR", dir.join("cli-keys"))
                .env("CIPHERSTORE_PKCS11_MODULE", MODULE)
                .env("CIPHERSTORE_HSM_TOKEN", LABEL)
                .env("CIPHERSTORE_HSM_PIN_FILE", dir.join("user.pin"))
                .env_remove("CIPHERSTORE_HSM_URI")
                .env_remove("CIPHERSTORE_HSM_PIN")
                .output()
                .unwrap()
        };
        let ok = |args: &[&str]| {
            let o = run(args);
            assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let fails = |args: &[&str], needle: &str| {
            let o = run(args);
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(!o.status.success() && err.contains(needle), "{args:?}: {err}");
        };
        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        let plain: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("in"), &plain).unwrap();
        assert!(ok(&["keys", "create", "media-root"]).contains("crn:v1:cipherstore:local:key:"));
        ok(&["keys", "bind-bucket", "media", "media-root"]);
        ok(&["encrypt", &p("in"), "-o", &p("obj"), "--mode", "sse-kp", "--bucket", "media"]);
        assert!(ok(&["inspect", &p("obj")]).contains("root key         crn:v1:cipherstore:local:key:"));
        ok(&["decrypt", &p("obj"), "-o", &p("out"), "--bucket", "media"]);
        assert_eq!(std::fs::read(dir.join("out")).unwrap(), plain);
        fails(&["decrypt", &p("obj"), "-o", &p("x")], "give --bucket");
        ok(&["keys", "rotate", "media-root"]);
        ok(&["decrypt", &p("obj"), "-o", &p("out2"), "--bucket", "media"]);
        assert_eq!(std::fs::read(dir.join("out2")).unwrap(), plain, "rotation keeps data readable");
        ok(&["keys", "disable", "media-root"]);
        fails(&["decrypt", &p("obj"), "-o", &p("x"), "--bucket", "media"], "suspended");
        fails(&["encrypt", &p("in"), "-o", &p("x"), "--mode", "sse-kp", "--bucket", "media"], "suspended");
        ok(&["keys", "enable", "media-root"]);
        fails(&["keys", "delete", "media-root"], "still protects bucket(s) media");
        ok(&["keys", "delete", "media-root", "--force"]);
        fails(&["decrypt", &p("obj"), "-o", &p("x"), "--bucket", "media"], "deleted");
        assert!(!dir.join("x").exists(), "no output from refused operations");
        let audit = ok(&["keys", "audit"]);
        assert!(audit.lines().count() >= 7, "{audit}");
    });
}

#[test]
fn every_wrapping_method_binds_its_context_and_keeps_root_keys_inside() {
    with_token("every_wrapping_method_binds_its_context_and_keeps_root_keys_inside", |t| {
        use cryptoki::object::{Attribute, AttributeType};
        let hsm = Hsm::open(&t.config()).unwrap();
        for method in WrapMethod::PREFERENCE {
            let obj = keys::KeyId::random().object(1);
            let other = keys::KeyId::random().object(1);
            hsm.generate_root(&obj, method).unwrap();
            hsm.generate_root(&other, method).unwrap();
            let wrapped = hsm.wrap(&obj.id, method, &key(7), b"bucket a").unwrap();
            assert!(!wrapped.windows(32).any(|w| w == [7u8; 32]), "{method}: the key shows");
            let again = hsm.wrap(&obj.id, method, &key(7), b"bucket a").unwrap();
            if method.encrypts() {
                assert_ne!(wrapped, again, "{method}: a fresh nonce or IV each time");
            }
            assert_eq!(hsm.unwrap(&obj.id, method, &wrapped, b"bucket a", "k").unwrap(), key(7), "{method}");
            let refused = |r: Result<SecretKey, KeysError>| matches!(r, Err(KeysError::UnwrapFailed(_)));
            assert!(
                refused(hsm.unwrap(&other.id, method, &wrapped, b"bucket a", "k")),
                "{method}: wrong root"
            );
            for i in [0, wrapped.len() / 2, wrapped.len() - 1] {
                let mut bad = wrapped.clone();
                bad[i] ^= 0x40;
                let r = hsm.unwrap(&obj.id, method, &bad, b"bucket a", "k");
                let said = format!("{:?}", r.as_ref().err());
                assert!(refused(r), "{method}: byte {i}: {said}");
            }
            assert!(hsm.unwrap(&obj.id, method, &wrapped[..wrapped.len() - 8], b"bucket a", "k").is_err());
            assert!(hsm.unwrap(&obj.id, method, &[], b"bucket a", "k").is_err(), "{method}: empty");
            if method.encrypts() {
                assert!(
                    refused(hsm.unwrap(&obj.id, method, &wrapped, b"bucket b", "k")),
                    "{method}: context"
                );
            }

            let types = [
                AttributeType::Value,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Wrap,
                AttributeType::Encrypt,
            ];
            let attrs = hsm.root_attributes(&obj.id, &types).unwrap();
            assert!(!attrs.iter().any(|a| matches!(a, Attribute::Value(_))), "{method}: CKA_VALUE readable");
            assert!(
                attrs.contains(&Attribute::Sensitive(true)) && attrs.contains(&Attribute::Extractable(false))
            );
            assert!(attrs.contains(&Attribute::Wrap(!method.encrypts())), "{method}: {attrs:?}");
            assert!(attrs.contains(&Attribute::Encrypt(method.encrypts())), "{method}: {attrs:?}");
            assert!(!hsm.root_is_wrappable(&obj.id, &other.id).unwrap(), "{method}: root key wrapped out");
            let mac = keys::wrapping::mac_id(&obj.id);
            if method.has_mac_key() {
                let attrs = hsm.root_attributes(&mac, &types).unwrap();
                assert!(!attrs.iter().any(|a| matches!(a, Attribute::Value(_))), "MAC key value readable");
                assert!(
                    attrs.contains(&Attribute::Sensitive(true))
                        && attrs.contains(&Attribute::Extractable(false))
                );
            }
            assert!(hsm.destroy_root(&obj.id).unwrap());
            assert!(
                !hsm.root_exists(&obj.id).unwrap() && !hsm.root_exists(&mac).unwrap(),
                "{method}: shredded"
            );
            assert!(matches!(
                hsm.unwrap(&obj.id, method, &wrapped, b"bucket a", "k"),
                Err(KeysError::KeyNotInHsm(_))
            ));
        }
    });
}

#[test]
fn keys_made_by_one_method_keep_reading_when_the_token_chooses_another() {
    with_token("keys_made_by_one_method_keep_reading_when_the_token_chooses_another", |t| {
        let open = |method: WrapMethod| {
            let o = keys::ManagerOptions::new(&t.dir.join("keys"));
            keys::KeyManager::open(Hsm::open(&t.config().with_wrap(method)).unwrap(), &o).unwrap()
        };
        let before = open(WrapMethod::AesKeyWrapPad);
        let root = before.create("long-lived").unwrap();
        before.create_bucket_key("archive", &KeyRef::parse(&root.crn)).unwrap();
        let archive = before.bucket_key("archive", &KeyRef::parse(&root.crn)).unwrap();

        // The token's configuration moves to AES-GCM: old bindings still unwrap; a rotation
        // makes version 2 under GCM and rewraps; a gateway still set to RFC 5649 reads it.
        let after = open(WrapMethod::AesGcm);
        assert_eq!(after.bucket_key("archive", &KeyRef::parse(&root.crn)).unwrap(), archive);
        let rotated = after.rotate(&KeyRef::parse("long-lived"), None).unwrap();
        assert_eq!(rotated.wrap_method, WrapMethod::AesGcm);
        assert_eq!(rotated.versions[0].method, WrapMethod::AesKeyWrapPad);
        assert_eq!(
            open(WrapMethod::AesKeyWrapPad).bucket_key("archive", &KeyRef::parse(&root.crn)).unwrap(),
            archive
        );
        assert_eq!(open(WrapMethod::AesKeyWrapPad).metrics().wrap_method, WrapMethod::AesKeyWrapPad);
    });
}

#[test]
fn state_written_before_methods_were_recorded_reads_as_rfc_5649() {
    let old = r#"{"keys":[{"id":"0d4c3f52-6f0e-4b8e-9f4a-2b7d8c1e5a90","name":"k","origin":"generated","state":"active",
        "versions":[{"version":1,"created":1}],"created":1,"updated":1}],
        "buckets":[{"bucket":"b","key":"0d4c3f52-6f0e-4b8e-9f4a-2b7d8c1e5a90","version":1,"wrapped":"00","created":1}]}"#;
    let state: keys::state::State = serde_json::from_str(old).unwrap();
    assert_eq!(state.keys[0].versions[0].method, WrapMethod::AesKeyWrapPad);
    assert_eq!(state.buckets[0].method, WrapMethod::AesKeyWrapPad);
}
