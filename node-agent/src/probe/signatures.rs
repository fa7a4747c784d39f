//! On-disk signature scanning: which partition tables, filesystems, LVM labels and Ceph
//! BlueStore labels a device (or partition) carries, read from its bytes.
//!
//! This is a pure function over any `Read + Seek` so it can be unit-tested on in-memory
//! buffers and reused by the wipe code (issue 4) to verify that a wipe removed everything.
//! We read the media ourselves instead of trusting udev/libblkid because the udev db is often
//! missing (lsblk then reports nothing) and libblkid without FORCE_GPT misses a surviving
//! backup GPT; the offsets follow libblkid/wipefs (see `notes/device-facts.md` §4).
//!
//! Offsets in the returned [`Signature`]s are absolute byte offsets from the start of the
//! reader, `length` is the number of magic bytes (the minimum a wipe must zero).

use std::io::{self, Read, Seek, SeekFrom};

use rookery_proto::{Signature, SignatureKind};

/// One GiB; BlueStore (Squid+) keeps label replicas at 1, 10, 100 and 1000 GiB.
const GIB: u64 = 1 << 30;
/// Where BlueStore writes its device label: offset 0 plus the Squid+ replicas.
pub const BLUESTORE_LABEL_OFFSETS: [u64; 5] = [0, GIB, 10 * GIB, 100 * GIB, 1000 * GIB];
const BLUESTORE_MAGIC: &[u8] = b"bluestore block device";

/// A GPT partition entry, as read from the primary (or else the backup) table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptEntry {
    /// 1-based slot number in the table.
    pub number: u32,
    /// Partition type GUID, lower-case canonical text form.
    pub type_guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    /// PARTLABEL (UTF-16LE in the table).
    pub name: String,
}

/// GPT partition type GUIDs that ceph-disk used (ceph-volume `util/constants.py`
/// `ceph_disk_guids`): a disk carrying one was an OSD before and ceph-volume refuses it.
pub const CEPH_DISK_GUIDS: &[&str] = &[
    "4fbd7e29-9d25-41b8-afd0-062c0ceff05d", // data
    "4fbd7e29-9d25-41b8-afd0-5ec00ceff05d", // data, luks
    "4fbd7e29-9d25-41b8-afd0-35865ceff05d", // data, plain dm-crypt
    "4fbd7e29-8ae0-4982-bf9d-5a8d867af560", // data, mpath
    "cafecafe-9b03-4f30-b4c6-b4b80ceff106", // block
    "cafecafe-9b03-4f30-b4c6-5ec00ceff106", // block, luks
    "cafecafe-9b03-4f30-b4c6-35865ceff106", // block, plain
    "cafecafe-8ae0-4982-bf9d-5a8d867af560", // block, mpath
    "30cd0809-c2b2-499c-8879-2d6b78529876", // block.db
    "30cd0809-c2b2-499c-8879-2d6b785292be", // block.db, luks
    "30cd0809-c2b2-499c-8879-2d6b785292bd", // block.db, plain
    "ec6d6385-e346-45dc-be91-da2a7c8b3261", // block.db, mpath
    "5ce17fce-4087-4169-b7ff-056cc58473f9", // block.wal
    "5ce17fce-4087-4169-b7ff-056cc58472be", // block.wal, luks
    "5ce17fce-4087-4169-b7ff-056cc58471bd", // block.wal, plain
    "01b41e1b-002a-453c-9f17-88793989ff8f", // block.wal, mpath
    "45b0969e-9b03-4f30-b4c6-b4b80ceff106", // journal
    "45b0969e-9b03-4f30-b4c6-5ec00ceff106", // journal, luks
    "45b0969e-9b03-4f30-b4c6-35865ceff106", // journal, plain
    "45b0969e-8ae0-4982-bf9d-5a8d867af560", // journal, mpath
    "fb3aabf9-d25f-47cc-bf5e-721d1816496b", // lockbox
];

/// Everything a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    pub signatures: Vec<Signature>,
    /// Entries of the GPT, if one was found (primary preferred, else backup).
    pub gpt_entries: Vec<GptEntry>,
}

impl ScanResult {
    /// True when a GPT entry looks like ceph-disk's (type GUID or a PARTLABEL containing
    /// "ceph"), which is ceph-volume's `Used by ceph-disk`.
    pub fn used_by_ceph_disk(&self) -> bool {
        self.gpt_entries.iter().any(|e| {
            CEPH_DISK_GUIDS.contains(&e.type_guid.as_str())
                || e.name.to_ascii_lowercase().contains("ceph")
        })
    }
}

/// Reads every signature this module knows from `dev`, a device (or partition, or image) of
/// `size` bytes whose logical sector size is `logical_sector_size` (512 or 4096; GPT is
/// looked for at both).
///
/// Never writes. Short reads near the end of the device are treated as "no signature";
/// any other I/O error is returned, because a device we cannot read must not be called
/// blank.
pub fn scan<R: Read + Seek>(
    dev: &mut R,
    size: u64,
    logical_sector_size: u32,
) -> io::Result<ScanResult> {
    let mut out = ScanResult::default();
    let head = read_at(dev, 0, 64 * 1024 + 4096, size)?;

    let vfat = scan_vfat(&head);
    scan_mbr_and_gpt(
        dev,
        &head,
        size,
        logical_sector_size,
        vfat.is_some(),
        &mut out,
    )?;
    if let Some(sig) = vfat {
        out.signatures.push(sig);
    }
    if let Some(sig) = scan_ext(&head) {
        out.signatures.push(sig);
    }
    if let Some(sig) = scan_xfs(&head) {
        out.signatures.push(sig);
    }
    if let Some(sig) = scan_btrfs(dev, size)? {
        out.signatures.push(sig);
    }
    if let Some(sig) = scan_swap(dev, size)? {
        out.signatures.push(sig);
    }
    if let Some(mut sig) = scan_lvm2(&head) {
        sig.label = lvm2_vg_name(dev, &head, sig.offset - 24, size)?;
        out.signatures.push(sig);
    }
    for off in BLUESTORE_LABEL_OFFSETS {
        if off + 4096 > size {
            break;
        }
        let buf = if off == 0 {
            head[..head.len().min(4096)].to_vec()
        } else {
            read_at(dev, off, 4096, size)?
        };
        if buf.starts_with(BLUESTORE_MAGIC) {
            out.signatures.push(Signature {
                kind: SignatureKind::Bluestore,
                offset: off,
                length: BLUESTORE_MAGIC.len() as u64,
                label: None,
                uuid: bluestore_uuid(&buf),
            });
        }
    }
    scan_other(&head, &mut out.signatures);
    Ok(out)
}

/// Reads up to `len` bytes at `off`, truncated at `size`. Missing bytes read as zero so a
/// short device simply has no signature there.
fn read_at<R: Read + Seek>(dev: &mut R, off: u64, len: usize, size: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if off >= size {
        return Ok(buf);
    }
    let want = (size - off).min(len as u64) as usize;
    dev.seek(SeekFrom::Start(off))?;
    let mut got = 0;
    while got < want {
        match dev.read(&mut buf[got..want]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// A NUL/space-padded label field as text, None when empty.
fn label(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// A 16-byte big-endian UUID (ext, xfs, btrfs store them that way) as text.
fn uuid_be(b: &[u8]) -> Option<String> {
    if b.iter().all(|&c| c == 0) {
        return None;
    }
    let h = hex::encode(b);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A GPT (mixed-endian) GUID as canonical text.
fn guid_mixed(b: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        le32(b, 0),
        le16(b, 4),
        le16(b, 6),
        hex::encode(&b[8..10]),
        hex::encode(&b[10..16])
    )
}

fn sig(kind: SignatureKind, offset: u64, length: u64) -> Signature {
    Signature {
        kind,
        offset,
        length,
        label: None,
        uuid: None,
    }
}

/// MBR at 510 and GPT headers at LBA 1 (primary) and the last LBA (backup).
///
/// A FAT boot sector also ends in 55 AA; like libblkid we do not call that a DOS table.
fn scan_mbr_and_gpt<R: Read + Seek>(
    dev: &mut R,
    head: &[u8],
    size: u64,
    logical_sector_size: u32,
    is_vfat: bool,
    out: &mut ScanResult,
) -> io::Result<()> {
    if head[510] == 0x55 && head[511] == 0xAA && !is_vfat {
        let entries = &head[446..510];
        let protective = (0..4).any(|i| entries[i * 16 + 4] == 0xEE);
        // libblkid requires boot indicators of 0x00 or 0x80; anything else is boot code of
        // some other format (and not a partition table).
        let sane = (0..4).all(|i| matches!(entries[i * 16], 0x00 | 0x80));
        if protective {
            out.signatures
                .push(sig(SignatureKind::ProtectiveMbr, 510, 2));
        } else if sane {
            out.signatures.push(sig(SignatureKind::Mbr, 510, 2));
        }
    }

    // Try the kernel's sector size first, then the other common one: an image written with
    // 4Kn tools and read through a 512-byte loop device is still a GPT.
    let mut sizes = vec![logical_sector_size.max(512) as u64];
    for s in [512u64, 4096] {
        if !sizes.contains(&s) {
            sizes.push(s);
        }
    }
    let mut primary_found = false;
    for &lbs in &sizes {
        if lbs * 2 > size {
            continue;
        }
        let hdr = read_at(dev, lbs, lbs as usize, size)?;
        if let Some(my_lba) = gpt_header_lba(&hdr)
            && my_lba == 1
        {
            out.signatures.push(sig(SignatureKind::GptPrimary, lbs, 8));
            out.gpt_entries = read_gpt_entries(dev, &hdr, lbs, size)?;
            primary_found = true;
            break;
        }
    }
    for &lbs in &sizes {
        if lbs * 2 > size || !size.is_multiple_of(lbs) {
            continue;
        }
        let last = size / lbs - 1;
        let hdr = read_at(dev, last * lbs, lbs as usize, size)?;
        if let Some(my_lba) = gpt_header_lba(&hdr)
            && my_lba == last
        {
            out.signatures
                .push(sig(SignatureKind::GptBackup, last * lbs, 8));
            if !primary_found {
                out.gpt_entries = read_gpt_entries(dev, &hdr, lbs, size)?;
            }
            break;
        }
    }
    Ok(())
}

/// `my_lba` of a GPT header when `hdr` starts with a plausible one.
fn gpt_header_lba(hdr: &[u8]) -> Option<u64> {
    if hdr.len() < 92 || &hdr[0..8] != b"EFI PART" {
        return None;
    }
    let header_size = le32(hdr, 12) as usize;
    if !(92..=hdr.len()).contains(&header_size) {
        return None;
    }
    Some(le64(hdr, 24))
}

fn read_gpt_entries<R: Read + Seek>(
    dev: &mut R,
    hdr: &[u8],
    lbs: u64,
    size: u64,
) -> io::Result<Vec<GptEntry>> {
    let entries_lba = le64(hdr, 72);
    let count = le32(hdr, 80).min(1024) as usize;
    let entry_size = le32(hdr, 84) as usize;
    if !(128..=4096).contains(&entry_size) || entries_lba == 0 {
        return Ok(Vec::new());
    }
    let Some(off) = entries_lba.checked_mul(lbs) else {
        return Ok(Vec::new());
    };
    let table = read_at(dev, off, count * entry_size, size)?;
    let mut out = Vec::new();
    for i in 0..count {
        let e = &table[i * entry_size..(i + 1) * entry_size];
        if e[0..16].iter().all(|&c| c == 0) {
            continue;
        }
        let name_units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        out.push(GptEntry {
            number: i as u32 + 1,
            type_guid: guid_mixed(&e[0..16]),
            first_lba: le64(e, 32),
            last_lba: le64(e, 40),
            name: String::from_utf16_lossy(&name_units),
        });
    }
    Ok(out)
}

/// ext2/3/4: magic 0xEF53 at 1024+56; the version is told apart by feature flags as
/// libblkid does (journal → ext3, features beyond ext3's set → ext4).
fn scan_ext(head: &[u8]) -> Option<Signature> {
    let sb = &head[1024..2048];
    if le16(sb, 56) != 0xEF53 {
        return None;
    }
    const HAS_JOURNAL: u32 = 0x0004;
    const JOURNAL_DEV: u32 = 0x0008;
    const EXT2_INCOMPAT: u32 = 0x0002 | 0x0010; // filetype, meta_bg
    const EXT3_INCOMPAT: u32 = EXT2_INCOMPAT | 0x0004; // + recover
    const EXT23_RO_COMPAT: u32 = 0x0001 | 0x0002 | 0x0004; // sparse_super, large_file, btree_dir
    let compat = le32(sb, 92);
    let incompat = le32(sb, 96);
    let ro_compat = le32(sb, 100);
    let kind = if incompat & JOURNAL_DEV != 0 {
        // An external ext3/4 journal: not a filesystem of its own, but still a signature.
        SignatureKind::Other
    } else if compat & HAS_JOURNAL == 0
        && incompat & !EXT2_INCOMPAT == 0
        && ro_compat & !EXT23_RO_COMPAT == 0
    {
        SignatureKind::Ext2
    } else if compat & HAS_JOURNAL != 0
        && incompat & !EXT3_INCOMPAT == 0
        && ro_compat & !EXT23_RO_COMPAT == 0
    {
        SignatureKind::Ext3
    } else {
        SignatureKind::Ext4
    };
    Some(Signature {
        kind,
        offset: 1024 + 56,
        length: 2,
        label: if kind == SignatureKind::Other {
            Some("jbd".into())
        } else {
            label(&sb[120..136])
        },
        uuid: uuid_be(&sb[104..120]),
    })
}

fn scan_xfs(head: &[u8]) -> Option<Signature> {
    if &head[0..4] != b"XFSB" {
        return None;
    }
    Some(Signature {
        kind: SignatureKind::Xfs,
        offset: 0,
        length: 4,
        label: label(&head[108..120]),
        uuid: uuid_be(&head[32..48]),
    })
}

fn scan_btrfs<R: Read + Seek>(dev: &mut R, size: u64) -> io::Result<Option<Signature>> {
    const SB: u64 = 64 * 1024;
    if SB + 4096 > size {
        return Ok(None);
    }
    let sb = read_at(dev, SB, 4096, size)?;
    if &sb[64..72] != b"_BHRfS_M" {
        return Ok(None);
    }
    Ok(Some(Signature {
        kind: SignatureKind::Btrfs,
        offset: SB + 64,
        length: 8,
        label: label(&sb[0x12b..0x12b + 256]),
        uuid: uuid_be(&sb[32..48]),
    }))
}

/// FAT12/16/32 boot sector. libblkid checks more (cluster maths); the jump instruction, a
/// sane bytes-per-sector and the type string are enough to tell FAT from a DOS table.
fn scan_vfat(head: &[u8]) -> Option<Signature> {
    if !matches!(head[0], 0xEB | 0xE9) {
        return None;
    }
    let bps = le16(head, 11);
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || head[13] == 0 {
        return None;
    }
    // libblkid's magics with their exact lengths: the signature a wipe zeroes must be the
    // bytes that matched, never more (a 5-byte `FAT32` used to be reported as 8 bytes, past
    // the end of a tiny device).
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    let fat32 = [b"MSWIN".as_slice(), b"FAT32   "];
    let fat = [b"MSDOS".as_slice(), b"FAT12   ", b"FAT16   ", b"FAT     "];
    let (offset, length, label_off, serial_off) = if let Some(m) = fat32.iter().find(|m| at(82, m))
    {
        (82u64, m.len() as u64, 71usize, 67usize)
    } else if let Some(m) = fat.iter().find(|m| at(54, m)) {
        (54, m.len() as u64, 43, 39)
    } else {
        return None;
    };
    let serial = le32(head, serial_off);
    let lbl = label(&head[label_off..label_off + 11]).filter(|l| l != "NO NAME");
    Some(Signature {
        kind: SignatureKind::Vfat,
        offset,
        length,
        label: lbl,
        uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF)),
    })
}

/// Linux swap: the magic sits in the last 10 bytes of the first page, and the page size of
/// the machine that ran mkswap may differ from ours, so try the sizes libblkid tries.
fn scan_swap<R: Read + Seek>(dev: &mut R, size: u64) -> io::Result<Option<Signature>> {
    for page in [4096u64, 8192, 16384, 65536] {
        if page > size {
            break;
        }
        let magic = read_at(dev, page - 10, 10, size)?;
        if magic == b"SWAPSPACE2" || magic == b"SWAP-SPACE" {
            let hdr = read_at(dev, 1024, 64, size)?;
            return Ok(Some(Signature {
                kind: SignatureKind::Swap,
                offset: page - 10,
                length: 10,
                label: label(&hdr[28..44]),
                uuid: uuid_be(&hdr[12..28]),
            }));
        }
    }
    Ok(None)
}

/// LVM2 physical volume label: `LABELONE` at the start of one of the first four sectors,
/// with type `LVM2 001` at +24.
fn scan_lvm2(head: &[u8]) -> Option<Signature> {
    for sector in 0..4usize {
        let s = &head[sector * 512..(sector + 1) * 512];
        if &s[0..8] == b"LABELONE" && &s[24..32] == b"LVM2 001" {
            let uuid = lvm2_uuid(&s[32..64]);
            return Some(Signature {
                kind: SignatureKind::Lvm2,
                offset: (sector * 512 + 24) as u64,
                length: 8,
                label: None,
                uuid,
            });
        }
    }
    None
}

/// The PV uuid in LVM's dashed form. LVM writes 32 characters from `[0-9A-Za-z!#]`; anything
/// else (a corrupt or crafted label) is shown as no uuid rather than trusted, because slicing
/// arbitrary UTF-8 at fixed byte offsets would panic on a multi-byte character.
fn lvm2_uuid(raw: &[u8]) -> Option<String> {
    if raw.len() != 32 || !raw.iter().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    let id = std::str::from_utf8(raw).ok()?;
    Some(format!(
        "{}-{}-{}-{}-{}-{}-{}",
        &id[0..6],
        &id[6..10],
        &id[10..14],
        &id[14..18],
        &id[18..22],
        &id[22..26],
        &id[26..32]
    ))
}

/// Name of the volume group a PV belongs to, from the first metadata area's current
/// metadata text (`<vgname> {\n...`); None for a PV without a VG (or unparsable metadata).
///
/// Layout (LVM2 `format_text/layout.h`): the label sector holds, at +32, the PV header:
/// uuid[32], device size (8), data-area list and then metadata-area list of
/// (offset, size) u64 pairs, each list ending in a zero pair. The metadata area starts with
/// an `mda_header` whose first `raw_locn` points at the text, relative to the area.
fn lvm2_vg_name<R: Read + Seek>(
    dev: &mut R,
    head: &[u8],
    label_off: u64,
    size: u64,
) -> io::Result<Option<String>> {
    let pvh = label_off as usize + 32;
    let mut i = pvh + 32 + 8;
    // Skip the data areas.
    while i + 16 <= head.len() && (le64(head, i) != 0 || le64(head, i + 8) != 0) {
        i += 16;
    }
    i += 16;
    if i + 16 > head.len() {
        return Ok(None);
    }
    let mda_off = le64(head, i);
    if mda_off == 0 {
        return Ok(None);
    }
    let mda = read_at(dev, mda_off, 512, size)?;
    if &mda[4..20] != b" LVM2 x[5A%r0N*>" {
        return Ok(None);
    }
    let text_off = le64(&mda, 40);
    let text_size = le64(&mda, 48).min(4096) as usize;
    if text_off == 0 || text_size == 0 {
        return Ok(None);
    }
    let Some(at) = mda_off.checked_add(text_off) else {
        return Ok(None);
    };
    let text = read_at(dev, at, text_size, size)?;
    let first = text.split(|&c| c == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first);
    Ok(line
        .strip_suffix(" {")
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.contains(' '))
        .map(str::to_string))
}

/// The OSD uuid on the line after the BlueStore magic.
fn bluestore_uuid(buf: &[u8]) -> Option<String> {
    let rest = buf.get(BLUESTORE_MAGIC.len() + 1..BLUESTORE_MAGIC.len() + 1 + 36)?;
    let s = std::str::from_utf8(rest).ok()?;
    (s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')).then(|| s.to_string())
}

/// Signatures we recognise but do not model one by one; `label` carries libblkid's name.
fn scan_other(head: &[u8], out: &mut Vec<Signature>) {
    let mut other = |name: &str, offset: u64, length: u64| {
        out.push(Signature {
            kind: SignatureKind::Other,
            offset,
            length,
            label: Some(name.to_string()),
            uuid: None,
        })
    };
    if head[0..6] == *b"LUKS\xba\xbe" {
        other("crypto_LUKS", 0, 6);
    }
    const MD_MAGIC: [u8; 4] = [0xfc, 0x4e, 0x2b, 0xa9];
    if head[0..4] == MD_MAGIC {
        other("linux_raid_member", 0, 4);
    }
    if head[4096..4100] == MD_MAGIC {
        other("linux_raid_member", 4096, 4);
    }
    if head[0x8001..0x8006] == *b"CD001" {
        other("iso9660", 0x8001, 5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const MIB: usize = 1 << 20;

    fn kinds(buf: Vec<u8>) -> Vec<SignatureKind> {
        let size = buf.len() as u64;
        scan(&mut Cursor::new(buf), size, 512)
            .unwrap()
            .signatures
            .into_iter()
            .map(|s| s.kind)
            .collect()
    }

    fn gpt_header(my_lba: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h
    }

    #[test]
    fn blank_has_nothing() {
        assert!(kinds(vec![0; 4 * MIB]).is_empty());
    }

    #[test]
    fn gpt_primary_and_backup_and_pmbr() {
        let mut b = vec![0u8; 4 * MIB];
        b[510] = 0x55;
        b[511] = 0xAA;
        b[446 + 4] = 0xEE;
        b[512..1024].copy_from_slice(&gpt_header(1));
        let last = (b.len() / 512 - 1) as u64;
        let n = b.len();
        b[n - 512..].copy_from_slice(&gpt_header(last));
        // One ceph-disk "block" partition named "ceph block".
        let e = 1024;
        let guid = [
            0xfe, 0xca, 0xfe, 0xca, 0x03, 0x9b, 0x30, 0x4f, 0xb4, 0xc6, 0xb4, 0xb8, 0x0c, 0xef,
            0xf1, 0x06,
        ];
        b[e..e + 16].copy_from_slice(&guid);
        for (i, u) in "ceph block".encode_utf16().enumerate() {
            b[e + 56 + 2 * i..e + 58 + 2 * i].copy_from_slice(&u.to_le_bytes());
        }
        let size = b.len() as u64;
        let r = scan(&mut Cursor::new(b), size, 512).unwrap();
        let k: Vec<_> = r.signatures.iter().map(|s| s.kind).collect();
        assert_eq!(
            k,
            vec![
                SignatureKind::ProtectiveMbr,
                SignatureKind::GptPrimary,
                SignatureKind::GptBackup
            ]
        );
        assert_eq!(r.signatures[2].offset, size - 512);
        assert_eq!(r.gpt_entries.len(), 1);
        assert_eq!(
            r.gpt_entries[0].type_guid,
            "cafecafe-9b03-4f30-b4c6-b4b80ceff106"
        );
        assert_eq!(r.gpt_entries[0].name, "ceph block");
        assert!(r.used_by_ceph_disk());
    }

    #[test]
    fn backup_only_gpt_is_found() {
        let mut b = vec![0u8; 4 * MIB];
        let last = (b.len() / 512 - 1) as u64;
        let n = b.len();
        b[n - 512..].copy_from_slice(&gpt_header(last));
        assert_eq!(kinds(b), vec![SignatureKind::GptBackup]);
    }

    #[test]
    fn gpt_4k_sectors() {
        let mut b = vec![0u8; 4 * MIB];
        b[4096..4608].copy_from_slice(&gpt_header(1));
        let size = b.len() as u64;
        let r = scan(&mut Cursor::new(b), size, 4096).unwrap();
        assert_eq!(r.signatures[0].kind, SignatureKind::GptPrimary);
        assert_eq!(r.signatures[0].offset, 4096);
    }

    #[test]
    fn empty_dos_table() {
        let mut b = vec![0u8; MIB];
        b[440..444].copy_from_slice(&[1, 2, 3, 4]);
        b[510] = 0x55;
        b[511] = 0xAA;
        assert_eq!(kinds(b), vec![SignatureKind::Mbr]);
    }

    #[test]
    fn ext_versions() {
        let mk = |compat: u32, incompat: u32, ro: u32| {
            let mut b = vec![0u8; MIB];
            b[1024 + 56] = 0x53;
            b[1024 + 57] = 0xEF;
            b[1024 + 92..1024 + 96].copy_from_slice(&compat.to_le_bytes());
            b[1024 + 96..1024 + 100].copy_from_slice(&incompat.to_le_bytes());
            b[1024 + 100..1024 + 104].copy_from_slice(&ro.to_le_bytes());
            b[1024 + 120..1024 + 124].copy_from_slice(b"data");
            b
        };
        assert_eq!(kinds(mk(0, 0x2, 0x3)), vec![SignatureKind::Ext2]);
        assert_eq!(kinds(mk(0x4, 0x2, 0x3)), vec![SignatureKind::Ext3]);
        // extents (0x40) and 64bit (0x80) are ext4-only.
        assert_eq!(
            kinds(mk(0x4, 0x2 | 0x40 | 0x80, 0x3)),
            vec![SignatureKind::Ext4]
        );
        let size = MIB as u64;
        let r = scan(&mut Cursor::new(mk(0x4, 0x42, 0)), size, 512).unwrap();
        assert_eq!(r.signatures[0].label.as_deref(), Some("data"));
        assert_eq!(r.signatures[0].offset, 0x438);
    }

    #[test]
    fn xfs_btrfs_swap_lvm() {
        let mut b = vec![0u8; MIB];
        b[0..4].copy_from_slice(b"XFSB");
        assert_eq!(kinds(b), vec![SignatureKind::Xfs]);

        let mut b = vec![0u8; MIB];
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        assert_eq!(kinds(b), vec![SignatureKind::Btrfs]);

        let mut b = vec![0u8; MIB];
        b[4096 - 10..4096].copy_from_slice(b"SWAPSPACE2");
        let r = scan(&mut Cursor::new(b.clone()), MIB as u64, 512).unwrap();
        assert_eq!(r.signatures[0].kind, SignatureKind::Swap);
        assert_eq!(r.signatures[0].offset, 0xFF6);
        // 64 KiB pages (aarch64/ppc64 mkswap).
        let mut b = vec![0u8; MIB];
        b[65536 - 10..65536].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(kinds(b), vec![SignatureKind::Swap]);

        let mut b = vec![0u8; MIB];
        b[512..520].copy_from_slice(b"LABELONE");
        b[536..544].copy_from_slice(b"LVM2 001");
        b[544..576].copy_from_slice(b"abcdefghijklmnopqrstuvwxyz012345");
        let r = scan(&mut Cursor::new(b), MIB as u64, 512).unwrap();
        assert_eq!(r.signatures[0].kind, SignatureKind::Lvm2);
        assert_eq!(r.signatures[0].offset, 0x218);
        assert_eq!(
            r.signatures[0].uuid.as_deref(),
            Some("abcdef-ghij-klmn-opqr-stuv-wxyz-012345")
        );
    }

    /// A label whose uuid field is valid UTF-8 with multi-byte characters (still 32 bytes)
    /// panicked on `&id[0..6]` and, with `panic = "abort"`, killed the whole host's probe.
    #[test]
    fn lvm_label_with_multibyte_uuid_does_not_panic() {
        let mut b = vec![0u8; MIB];
        b[512..520].copy_from_slice(b"LABELONE");
        b[536..544].copy_from_slice(b"LVM2 001");
        // 1 + 15 × 2 + 1 = 32 bytes; byte 6 falls inside an `é`.
        let raw = format!("a{}b", "é".repeat(15)).into_bytes();
        assert_eq!(raw.len(), 32);
        b[544..576].copy_from_slice(&raw);
        let r = scan(&mut Cursor::new(b.clone()), MIB as u64, 512).unwrap();
        assert_eq!(r.signatures[0].kind, SignatureKind::Lvm2);
        assert_eq!(r.signatures[0].uuid, None);
        // Control characters and NULs are not an LVM uuid either.
        b[544..576].fill(0);
        let r = scan(&mut Cursor::new(b), MIB as u64, 512).unwrap();
        assert_eq!(r.signatures[0].uuid, None);
    }

    #[test]
    fn vfat_is_not_a_dos_table() {
        let mut b = vec![0u8; MIB];
        b[0] = 0xEB;
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 8;
        b[82..90].copy_from_slice(b"FAT32   ");
        b[71..82].copy_from_slice(b"MYDISK     ");
        b[510] = 0x55;
        b[511] = 0xAA;
        let r = scan(&mut Cursor::new(b), MIB as u64, 512).unwrap();
        assert_eq!(r.signatures.len(), 1);
        assert_eq!(r.signatures[0].kind, SignatureKind::Vfat);
        assert_eq!(r.signatures[0].label.as_deref(), Some("MYDISK"));
    }

    /// Found by the `signatures` fuzz target: an 88-byte device with `FAT32` (5 bytes, then
    /// a NUL) at 82 was reported as an 8-byte vfat signature ending past the device.
    #[test]
    fn vfat_magic_is_exact_and_inside_the_device() {
        let mut b = vec![0u8; 88];
        b[0] = 0xEB;
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 8;
        b[82..87].copy_from_slice(b"FAT32");
        assert!(kinds(b.clone()).is_empty());
        b[82..87].copy_from_slice(b"MSWIN");
        let r = scan(&mut Cursor::new(b), 88, 512).unwrap();
        assert_eq!((r.signatures[0].offset, r.signatures[0].length), (82, 5));
    }

    /// A sparse reader: zeros everywhere except a few patches, so multi-GiB devices can be
    /// tested without allocating them.
    struct Sparse {
        size: u64,
        pos: u64,
        patches: Vec<(u64, Vec<u8>)>,
    }
    impl Read for Sparse {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (self.size.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            for (off, data) in &self.patches {
                for (i, &c) in data.iter().enumerate() {
                    let at = off + i as u64;
                    if at >= self.pos && at < self.pos + n as u64 {
                        buf[(at - self.pos) as usize] = c;
                    }
                }
            }
            self.pos += n as u64;
            Ok(n)
        }
    }
    impl Seek for Sparse {
        fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
            if let SeekFrom::Start(o) = p {
                self.pos = o;
            }
            Ok(self.pos)
        }
    }

    #[test]
    fn bluestore_label_and_replicas() {
        let label = b"bluestore block device\n01234567-89ab-cdef-0123-456789abcdef\n".to_vec();
        let size = 20 * GIB;
        let mut s = Sparse {
            size,
            pos: 0,
            patches: vec![(GIB, label.clone()), (10 * GIB, label.clone())],
        };
        let r = scan(&mut s, size, 512).unwrap();
        let offs: Vec<_> = r.signatures.iter().map(|s| (s.kind, s.offset)).collect();
        assert_eq!(
            offs,
            vec![
                (SignatureKind::Bluestore, GIB),
                (SignatureKind::Bluestore, 10 * GIB)
            ]
        );
        assert_eq!(
            r.signatures[0].uuid.as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        s.patches = vec![(0, label)];
        let r = scan(&mut s, size, 512).unwrap();
        assert_eq!(r.signatures[0].offset, 0);
    }

    #[test]
    fn tiny_device_does_not_error() {
        assert!(kinds(vec![0; 100]).is_empty());
        assert!(kinds(Vec::new()).is_empty());
    }
}
