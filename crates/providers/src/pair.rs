//! `bpe`'s `is_valid_token_pair`, shared by the counter (`tokens.rs`, over
//! its tables) and the build script that makes those tables (`build.rs`,
//! over maps while it works out the merges).

/// Whether BPE keeps token `t1` next to token `t2`: undo the merges that
/// made them, newest first, and look for a merge across their boundary that
/// BPE would have made before. `merged(a, b)` is the token BPE merges `a`
/// and `b` into, if any; `split(t)` the two tokens merged into `t` (`(t, t)`
/// for a token no merge makes).
#[inline]
pub(crate) fn keeps(
    merged: impl Fn(u32, u32) -> Option<u32>,
    split: impl Fn(u32) -> (u32, u32),
    mut t1: u32,
    mut t2: u32,
) -> bool {
    let mut limit = u32::MAX;
    loop {
        if merged(t1, t2).is_some_and(|m| m < limit) {
            return false;
        }
        if t1 > t2 {
            limit = t1;
            t1 = split(t1).1;
            if t1 == limit {
                limit = t2.saturating_add(1);
                t2 = split(t2).0;
                if t2.saturating_add(1) == limit {
                    return true;
                }
            }
        } else {
            limit = t2.saturating_add(1);
            t2 = split(t2).0;
            if t2.saturating_add(1) == limit {
                limit = t1;
                t1 = split(t1).1;
                if t1 == limit {
                    return true;
                }
            }
        }
        // Only on corrupt tables (a split out of range): stop rather than loop.
        if t1 == u32::MAX || t2 == u32::MAX {
            return true;
        }
    }
}
