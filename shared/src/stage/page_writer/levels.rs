//! Parquet's RLE/bit-packed hybrid encoding, of definition and repetition levels and of
//! dictionary indices.

/// Packs values of `width` bits, least significant first; zero bits fill the last byte.
pub(super) fn pack_bits(values: impl Iterator<Item = u64>, width: u32, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let (mut buffer, mut bits) = (0u64, 0u32);
    for value in values {
        buffer |= value << bits;
        bits += width;
        if bits >= 64 {
            out.extend_from_slice(&buffer.to_le_bytes());
            bits -= 64;
            // The value's bits that did not fit (none when it ended exactly at 64).
            buffer = if bits == 0 { 0 } else { value >> (width - bits) };
        }
    }
    out.extend_from_slice(&buffer.to_le_bytes()[..bits.div_ceil(8) as usize]);
}

/// How many of `levels` are `level`.
pub(super) fn count_equal(levels: &[u8], level: u8) -> usize {
    levels.iter().filter(|&&each| each == level).count()
}

/// Appends `levels` in the RLE/bit-packed hybrid encoding at the bit width of `max`, and
/// returns the bytes appended.
pub(super) fn encode_levels(levels: &[u8], max: u8, out: &mut Vec<u8>) -> usize {
    let width = 8 - max.leading_zeros();
    let start = out.len();
    let mut literals = 0; // levels[literals..at] wait to be bit-packed
    let mut at = 0;
    while at < levels.len() {
        let value = levels[at];
        let run = run_length(&levels[at..]);
        // A bit-packed run holds whole groups of 8: complete the pending group from this run,
        // and repeat the rest if that leaves 8 or more.
        let fill = (8 - (at - literals) % 8) % 8;
        if run >= fill + 8 {
            if at + fill > literals {
                bit_pack(&levels[literals..at + fill], width, out);
            }
            varint((run - fill) << 1, out);
            out.push(value);
            literals = at + run;
        }
        at += run;
    }
    if literals < levels.len() {
        bit_pack(&levels[literals..], width, out);
    }
    out.len() - start
}

/// How many of `levels` from the first on equal the first, compared eight at a time.
pub(super) fn run_length(levels: &[u8]) -> usize {
    let pattern = u64::from_ne_bytes([levels[0]; 8]);
    let mut words = levels.chunks_exact(8);
    let mut length = 0;
    for word in &mut words {
        let differs = u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ pattern;
        if differs != 0 {
            return length + (differs.trailing_zeros() / 8) as usize;
        }
        length += 8;
    }
    length + words.remainder().iter().take_while(|&&level| level == levels[0]).count()
}

/// A bit-packed run of `levels`, padded with zeros to a whole group of 8.
pub(super) fn bit_pack(levels: &[u8], width: u32, out: &mut Vec<u8>) {
    let groups = levels.len().div_ceil(8);
    varint((groups << 1) | 1, out);
    let start = out.len();
    if width == 1 {
        // Levels of 0 and 1 (a nullable column, or one list level): a multiply gathers the low
        // bit of each of eight bytes into one byte, a step instead of eight.
        let mut eights = levels.chunks_exact(8);
        out.extend(eights.by_ref().map(|eight| gather_low_bits(u64::from_le_bytes(eight.try_into().expect("8")))));
        let rest = eights.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            out.push(gather_low_bits(u64::from_le_bytes(last)));
        }
    } else {
        pack_bits(levels.iter().map(|&level| u64::from(level)), width, out);
    }
    // Zero levels pad the last group of 8.
    out.resize(start + groups * width as usize, 0);
}

/// Bit `i` of the result is the low bit of byte `i` of `bytes`, each byte being 0 or 1. The
/// multiplier's terms move byte `i`'s bit to bit 56 + `i`, and every other product lands
/// below bit 56 or past bit 63.
pub(super) fn gather_low_bits(bytes: u64) -> u8 {
    (bytes.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// Unsigned LEB128, as RLE run headers are written.
pub(super) fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends dictionary `indices` as an `RLE_DICTIONARY` page body: the bit width in one byte,
/// then the indices in the RLE/bit-packed hybrid encoding (runs of 8 or more repeated, the
/// rest bit-packed in groups of 8).
pub(super) fn encode_indices(indices: &[u32], entries: u32, out: &mut Vec<u8>) {
    let width = 32 - entries.saturating_sub(1).leading_zeros();
    out.push(width as u8);
    let value_bytes = width.div_ceil(8) as usize;
    let mut literals = 0; // indices[literals..at] wait to be bit-packed
    let mut at = 0;
    while at < indices.len() {
        let value = indices[at];
        let run = indices[at..].iter().take_while(|&&each| each == value).count();
        let fill = (8 - (at - literals) % 8) % 8;
        if run >= fill + 8 {
            if at + fill > literals {
                pack_indices(&indices[literals..at + fill], width, out);
            }
            varint((run - fill) << 1, out);
            out.extend_from_slice(&value.to_le_bytes()[..value_bytes]);
            literals = at + run;
        }
        at += run;
    }
    if literals < indices.len() {
        pack_indices(&indices[literals..], width, out);
    }
}

/// A bit-packed run of `indices`, padded with zeros to a whole group of 8.
fn pack_indices(indices: &[u32], width: u32, out: &mut Vec<u8>) {
    let groups = indices.len().div_ceil(8);
    varint((groups << 1) | 1, out);
    let start = out.len();
    pack_bits(indices.iter().map(|&index| u64::from(index)), width, out);
    out.resize(start + groups * width as usize, 0);
}
