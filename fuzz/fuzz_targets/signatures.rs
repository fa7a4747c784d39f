//! `signatures::scan` over arbitrary disk bytes. The first byte chooses the logical sector
//! size (bit 0: 4096) and whether the declared device size is larger than the bytes (bit 1:
//! the reader comes up short, as a device whose size the kernel over-reports does); the rest
//! is the device image. Beyond "never panics", every signature must lie inside the device,
//! because the wipe zeroes exactly those bytes.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use rookery_agent::probe::signatures::scan;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, image)) = data.split_first() else {
        return;
    };
    let lbs = if flags & 1 == 1 { 4096 } else { 512 };
    let len = image.len() as u64;
    let size = if flags & 2 == 2 { len * 3 + 4096 } else { len };
    let r = scan(&mut Cursor::new(image), size, lbs).expect("an in-memory read never fails");
    for s in &r.signatures {
        assert!(
            s.offset.checked_add(s.length).is_some_and(|end| end <= size),
            "{s:?} is outside a {size}-byte device"
        );
    }
});
