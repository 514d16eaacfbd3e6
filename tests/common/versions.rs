//! A store's versions against a model: whatever sequence of versioned commits, null
//! commits, delete markers and removals of single versions, the store lists, pages and
//! serves exactly what the model says (the current version first, then the others newest
//! first; a null version replaces the null version; removing the current promotes the
//! newest other one). Shared by the filesystem and the cluster store's tests.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::Wait;
use store::{
    AnnexEdit, Page, Removal, SequentialReader, Store, StoreError, Version, VersionCursor, VersionId, Wanted,
};

/// One step.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Commit a new version (`null`: as a suspended bucket does) with this body.
    Put { key: usize, null: bool, body: u8 },
    /// Commit a delete marker.
    Mark { key: usize, null: bool },
    /// Remove the `n`th listed version of the key (modulo how many it has).
    Remove { key: usize, n: usize },
}

/// Keys the steps use (a `/` to make listings fold).
pub(crate) const KEYS: [&str; 3] = ["a", "a/b", "b"];

#[derive(Default, Debug)]
struct Key {
    current: Option<(Version, Vec<u8>)>,
    noncurrent: BTreeMap<VersionId, (Version, Vec<u8>)>,
}

impl Key {
    /// (version, latest, body), as a listing orders them.
    fn listed(&self) -> Vec<(Version, bool, Vec<u8>)> {
        let mut out: Vec<_> = self.current.iter().map(|(v, b)| (v.clone(), true, b.clone())).collect();
        out.extend(self.noncurrent.values().map(|(v, b)| (v.clone(), false, b.clone())));
        out
    }

    fn commit(&mut self, v: Version, body: Vec<u8>) {
        if let Some((c, b)) = self.current.take()
            && !(c.null && v.null)
        {
            self.noncurrent.insert(c.id.clone(), (c, b));
        }
        if v.null {
            self.noncurrent.retain(|_, (o, _)| !o.null);
        }
        self.current = Some((v, body));
    }

    fn remove(&mut self, v: &Version) {
        if self.current.as_ref().is_some_and(|(c, _)| c.id == v.id) {
            self.current = self.noncurrent.pop_first().map(|(_, e)| e);
        } else {
            self.noncurrent.remove(&v.id);
        }
    }
}

fn body_of(key: &str, version: &Version, seed: u8) -> Vec<u8> {
    if version.marker { Vec::new() } else { format!("{key} {seed} {}", version.id).into_bytes() }
}

fn record_of(key: &str, body: &[u8]) -> Vec<u8> {
    format!("record of {key} {}", String::from_utf8_lossy(body)).into_bytes()
}

fn read_all(o: &store::StoredObject) -> Vec<u8> {
    let mut out = Vec::new();
    SequentialReader::new(o.body.as_ref(), 0).read_to_end(&mut out).unwrap();
    out
}

/// Runs `steps` on `bucket` (made by the caller, empty) and checks the store against the
/// model after each.
pub(crate) fn run(s: &dyn Store, bucket: &str, steps: &[Step]) {
    let mut model: Vec<Key> = KEYS.iter().map(|_| Key::default()).collect();
    for step in steps {
        match *step {
            Step::Put { key, null, body } => {
                commit(s, bucket, &mut model[key], KEYS[key], Version::new(null, false), body)
            }
            Step::Mark { key, null } => {
                commit(s, bucket, &mut model[key], KEYS[key], Version::new(null, true), 0)
            }
            Step::Remove { key, n } => {
                let listed = model[key].listed();
                if listed.is_empty() {
                    let gone = super::delete_version(s, bucket, KEYS[key], &Wanted::Null).unwrap();
                    assert_eq!(gone, None);
                    continue;
                }
                let (v, _, body) = &listed[n % listed.len()];
                let wanted = if v.null { Wanted::Null } else { Wanted::Id(v.id.clone()) };
                let (gone, record) = super::delete_version(s, bucket, KEYS[key], &wanted).unwrap().unwrap();
                assert_eq!(&gone, v);
                assert_eq!(record, record_of(KEYS[key], body));
                model[key].remove(v);
            }
        }
        check(s, bucket, &model);
    }
}

fn commit(s: &dyn Store, bucket: &str, model: &mut Key, name: &str, v: Version, seed: u8) {
    let bytes = body_of(name, &v, seed);
    let mut w = s.put(bucket, name).wait().unwrap();
    w.write_all(&bytes).unwrap();
    w.commit_version(&record_of(name, &bytes), &v).wait().unwrap();
    model.commit(v, bytes);
}

fn check(s: &dyn Store, bucket: &str, model: &[Key]) {
    // Every version, in listing order, with its record and bytes.
    let mut expected = Vec::new();
    for (i, k) in model.iter().enumerate() {
        for (v, latest, body) in k.listed() {
            expected.push((KEYS[i].to_owned(), v, latest, body));
        }
    }
    let listed = s.list_versions(bucket, Page::new("", None, 10_000)).wait().unwrap();
    let got: Vec<_> = listed.iter().map(|l| (l.key.clone(), l.version.clone(), l.latest)).collect();
    let want: Vec<_> = expected.iter().map(|(k, v, l, _)| (k.clone(), v.clone(), *l)).collect();
    assert_eq!(got, want, "version listing");
    for (l, (key, v, _, body)) in listed.iter().zip(&expected) {
        assert_eq!(l.record, record_of(key, body));
        let wanted = if v.null { Wanted::Null } else { Wanted::Id(v.id.clone()) };
        let o = s.get_version(bucket, key, &wanted).wait().unwrap();
        assert_eq!(o.version.as_ref(), Some(v));
        assert_eq!(read_all(&o), *body, "{key} {v:?}");
    }
    // Paged two at a time, resuming after the last version listed, gives the same.
    let mut paged = Vec::new();
    let mut after: Option<VersionCursor> = None;
    loop {
        let page = s.list_versions(bucket, Page::new("", after.as_ref(), 2)).wait().unwrap();
        if let Some(last) = page.last() {
            after = Some(VersionCursor { key: last.key.clone(), after_id: Some(last.version.id.clone()) });
        }
        let done = page.len() < 2;
        paged.extend(page.into_iter().map(|l| (l.key, l.version, l.latest)));
        if done {
            break;
        }
    }
    assert_eq!(paged, want, "paged version listing");
    // The current versions: GET serves them; listings skip delete markers.
    let mut objects = Vec::new();
    for (i, k) in model.iter().enumerate() {
        match &k.current {
            Some((v, body)) => {
                let o = s.get(bucket, KEYS[i]).wait().unwrap();
                assert_eq!(o.version.as_ref(), Some(v));
                assert_eq!(read_all(&o), *body);
                if !v.marker {
                    objects.push(KEYS[i].to_owned());
                }
            }
            None => assert!(matches!(s.get(bucket, KEYS[i]).wait(), Err(StoreError::NoSuchKey { .. }))),
        }
    }
    let names: Vec<String> =
        s.list(bucket, Page::new("", None, 1000)).wait().unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, objects, "object listing");
    let absent = Wanted::Id(Version::new(false, false).id);
    assert!(matches!(s.get_version(bucket, KEYS[0], &absent).wait(), Err(StoreError::NoSuchVersion { .. })));
}

/// `threads` writers commit `each` versions of one key at once: every version is kept.
pub(crate) fn concurrent(s: &(dyn Store + Sync), bucket: &str, threads: usize, each: usize) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                for i in 0..each {
                    let v = Version::new(false, false);
                    let body = format!("writer {t} version {i}").into_bytes();
                    let mut w = s.put(bucket, "contended").wait().unwrap();
                    w.write_all(&body).unwrap();
                    w.commit_version(&record_of("contended", &body), &v).wait().unwrap();
                }
            });
        }
    });
    let listed = s.list_versions(bucket, Page::new("contended", None, 100_000)).wait().unwrap();
    assert_eq!(listed.len(), threads * each, "every concurrent version is kept");
    assert_eq!(listed.iter().filter(|l| l.latest).count(), 1);
    let mut bodies: Vec<String> = listed
        .iter()
        .map(|l| {
            let wanted = Wanted::Id(l.version.id.clone());
            String::from_utf8(read_all(&s.get_version(bucket, "contended", &wanted).wait().unwrap())).unwrap()
        })
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), threads * each);
}

/// Annexes of any version, and removals an `allow` refuses: an annex set on a version
/// stays with it when a later commit makes it noncurrent and when it is promoted back;
/// a refused change or removal leaves everything as it was. `bucket` is made by the
/// caller, empty.
pub(crate) fn annexes(s: &dyn Store, bucket: &str) {
    let key = KEYS[0];
    let mut model = Key::default();
    let v1 = Version::new(false, false);
    commit(s, bucket, &mut model, key, v1.clone(), 1);
    let id = |v: &Version| Wanted::Id(v.id.clone());
    s.set_annex(
        bucket,
        key,
        AnnexEdit {
            at: Some(&id(&v1)),
            change: &mut |record, old| {
                assert_eq!(
                    record,
                    record_of(key, &body_of(key, &v1, 1)),
                    "the change sees the version's record"
                );
                assert_eq!(old, None);
                Ok(Some(b"annex of v1".to_vec()))
            },
        },
    )
    .wait()
    .unwrap();
    let v2 = Version::new(false, false);
    commit(s, bucket, &mut model, key, v2.clone(), 2);
    let annex_of = |v: &Version| s.get_version(bucket, key, &id(v)).wait().unwrap().annex;
    assert_eq!(annex_of(&v1).as_deref(), Some(&b"annex of v1"[..]), "kept when it became noncurrent");
    assert_eq!(annex_of(&v2), None, "a new version starts without one");
    // A noncurrent version's annex changes in place.
    s.set_annex(
        bucket,
        key,
        AnnexEdit {
            at: Some(&id(&v1)),
            change: &mut |_, old| {
                assert_eq!(old, Some(&b"annex of v1"[..]));
                Ok(Some(b"v1 again".to_vec()))
            },
        },
    )
    .wait()
    .unwrap();
    assert_eq!(annex_of(&v1).as_deref(), Some(&b"v1 again"[..]));
    assert_eq!(s.get(bucket, key).wait().unwrap().annex, None, "the current version's is its own");
    // A refused change changes nothing.
    let refused = s
        .set_annex(
            bucket,
            key,
            AnnexEdit { at: Some(&id(&v1)), change: &mut |_, _| Err(StoreError::Refused) },
        )
        .wait();
    assert!(matches!(refused, Err(StoreError::Refused)));
    assert_eq!(annex_of(&v1).as_deref(), Some(&b"v1 again"[..]));
    let absent = Wanted::Id(Version::new(false, false).id);
    let none = s.set_annex(bucket, key, AnnexEdit { at: Some(&absent), change: &mut |_, _| Ok(None) }).wait();
    assert!(matches!(none, Err(StoreError::NoSuchVersion { .. })), "{none:?}");
    // A refused removal keeps the version; the judge sees its record and annex.
    let kept = s
        .delete_version(
            bucket,
            key,
            Removal {
                wanted: &id(&v1),
                allow: &mut |record, annex| {
                    assert_eq!(record, record_of(key, &body_of(key, &v1, 1)));
                    assert_eq!(annex, Some(&b"v1 again"[..]));
                    Err(StoreError::Refused)
                },
            },
        )
        .wait();
    assert!(matches!(kept, Err(StoreError::Refused)));
    let kept = s
        .delete_version(
            bucket,
            key,
            Removal {
                wanted: &id(&v2),
                allow: &mut |_, annex| {
                    assert_eq!(annex, None);
                    Err(StoreError::Refused)
                },
            },
        )
        .wait();
    assert!(matches!(kept, Err(StoreError::Refused)));
    check(s, bucket, std::slice::from_ref(&model));
    // Removing the current version promotes v1 with its annex.
    super::delete_version(s, bucket, key, &id(&v2)).unwrap().unwrap();
    model.remove(&v2);
    let current = s.get(bucket, key).wait().unwrap();
    assert_eq!(current.version.as_ref().map(|v| v.id.clone()), Some(v1.id.clone()));
    assert_eq!(current.annex.as_deref(), Some(&b"v1 again"[..]), "promoted with its annex");
    super::delete_version(s, bucket, key, &id(&v1)).unwrap().unwrap();
    assert!(matches!(s.get(bucket, key).wait(), Err(StoreError::NoSuchKey { .. })));
}

/// `threads` writers change the annex of one version `each` times at once (a counter each
/// change reads and increments) while another commits new versions of its key, moving it
/// from current to noncurrent: no change is lost.
pub(crate) fn annex_races(s: &(dyn Store + Sync), bucket: &str, threads: usize, each: usize) {
    let key = "raced";
    let first = Version::new(false, false);
    let mut w = s.put(bucket, key).wait().unwrap();
    w.write_all(b"first").unwrap();
    w.commit_version(&record_of(key, b"first"), &first).wait().unwrap();
    let wanted = Wanted::Id(first.id.clone());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..each {
                    s.set_annex(
                        bucket,
                        key,
                        AnnexEdit {
                            at: Some(&wanted),
                            change: &mut |_, old| {
                                let n: usize = old.map_or(0, |o| String::from_utf8_lossy(o).parse().unwrap());
                                Ok(Some((n + 1).to_string().into_bytes()))
                            },
                        },
                    )
                    .wait()
                    .unwrap();
                }
            });
        }
        scope.spawn(|| {
            for i in 0..each {
                let body = format!("later {i}").into_bytes();
                let mut w = s.put(bucket, key).wait().unwrap();
                w.write_all(&body).unwrap();
                w.commit_version(&record_of(key, &body), &Version::new(false, false)).wait().unwrap();
            }
        });
    });
    let annex = s.get_version(bucket, key, &wanted).wait().unwrap().annex.unwrap();
    assert_eq!(String::from_utf8(annex).unwrap(), (threads * each).to_string(), "no change lost");
    assert_eq!(s.list_versions(bucket, Page::new(key, None, 100_000)).wait().unwrap().len(), each + 1);
}
