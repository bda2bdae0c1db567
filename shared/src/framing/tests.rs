use super::*;

fn lines(framing: &str, input: &str) -> Result<String, String> {
    let framing: Framing = framing.parse().unwrap();
    let whole = framing.to_lines(input.as_bytes())?;
    // Read a byte at a time too: the same lines whatever the reads' sizes.
    let mut streamed = Vec::new();
    let mut reader = framing.lines_of(OneByte(input.as_bytes()), u64::MAX);
    let read = reader.read_to_end(&mut streamed);
    match read {
        Ok(_) => assert_eq!(streamed, whole, "streamed and whole differ for {input:?}"),
        Err(err) => panic!("streamed failed where whole did not: {err}"),
    }
    Ok(String::from_utf8(whole).unwrap())
}

fn refused(framing: &str, input: &str) -> String {
    let framing: Framing = framing.parse().unwrap();
    let whole = framing.to_lines(input.as_bytes()).unwrap_err();
    let err = framing.lines_of(OneByte(input.as_bytes()), u64::MAX).read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(err.get_ref().unwrap().downcast_ref::<FramingError>().unwrap().0, whole);
    whole
}

/// A reader that hands out one byte per read.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.split_first() {
            Some((first, rest)) if !buf.is_empty() => {
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn framings_parse_and_bad_ones_say_what_is_valid() {
    assert_eq!("ndjson".parse::<Framing>().unwrap(), Framing::Lines);
    assert_eq!("concatenated".parse::<Framing>().unwrap(), Framing::Concatenated);
    assert_eq!("array".parse::<Framing>().unwrap(), Framing::Array);
    assert_eq!("array:Records".parse::<Framing>().unwrap(), Framing::NamedArray("Records".into()));
    for bad in ["json", "array:", "array:a\"b", "lines"] {
        let err = bad.parse::<Framing>().unwrap_err().to_string();
        assert!(err.contains("INLET_FRAMING") && err.contains("array:<key>"), "{bad}: {err}");
    }
    assert_eq!(Framing::NamedArray("Records".into()).to_string(), "array:Records");
}

#[test]
fn replay_objects_are_read_as_lines_whatever_the_framing() {
    let array = Framing::Array;
    assert_eq!(array.of_key("svc/a.json.zst.replay-0123abcd.json.zst"), &Framing::Lines);
    assert_eq!(array.of_key("svc/a.json.zst"), &Framing::Array);
    assert_eq!(array.of_key(".replay-x.json.zst"), &Framing::Array, "no original key");
    assert_eq!(array.of_key("svc/a.replay-/b.json.zst"), &Framing::Array);
}

#[test]
fn concatenated_records_become_lines_with_their_bytes() {
    let input = "\u{feff}{\"a\":1}{\"b\":\"x}{\\\"\"}\n\n  {\"c\":\n [1,\r\n 2]} {\"d\":{}}";
    assert_eq!(
        lines("concatenated", input).unwrap(),
        "{\"a\":1}\n{\"b\":\"x}{\\\"\"}\n{\"c\":  [1,   2]}\n{\"d\":{}}\n"
    );
    // Values that are not objects are records too: the decoder refuses them, with their position.
    assert_eq!(lines("concatenated", "1 2{\"a\":1}\"s\"null").unwrap(), "1\n2\n{\"a\":1}\n\"s\"\nnull\n");
    // A record cut short ends the object as a line of its own, for the decoder to refuse.
    assert_eq!(lines("concatenated", "{\"a\":1}{\"b\":[").unwrap(), "{\"a\":1}\n{\"b\":[\n");
    assert_eq!(lines("concatenated", "").unwrap(), "");
    assert_eq!(lines("concatenated", " \n ").unwrap(), "");
}

#[test]
fn a_raw_line_break_inside_a_string_stays_refused() {
    // JSON has no raw line breaks in strings: the record keeps one line and stays invalid.
    assert_eq!(lines("concatenated", "{\"a\":\"x\ny\"}{\"b\":2}").unwrap(), "{\"a\":\"x\u{1}y\"}\n{\"b\":2}\n");
}

#[test]
fn array_elements_become_lines() {
    let input = "[\n  {\"a\": 1},\n  {\"b\": [1, {\"c\": \"],\"}]},\n  7, \"s\"\n]\n";
    assert_eq!(lines("array", input).unwrap(), "{\"a\": 1}\n{\"b\": [1, {\"c\": \"],\"}]}\n7\n\"s\" \n");
    assert_eq!(lines("array", "[]").unwrap(), "");
    assert_eq!(lines("array", "").unwrap(), "", "an empty object holds no records");
    for (input, why) in [
        ("{\"a\":1}", "found `{` where the array's `[` should be"),
        ("[{\"a\":1},]", "found `]` where an element should be"),
        ("[,{\"a\":1}]", "found `,` where an element should be"),
        ("[{\"a\":1}] x", "found `x` where the end of the object should be"),
        ("[{\"a\":1}", "ends before its closing bracket"),
        ("[{\"a\":1", "ends inside a value"),
        ("[{\"a\":1}}", "found `}` where `,` or `]` after an element should be"),
        ("[{\"a\":1} {\"b\":2}]", "found `{` after a value, where `,` should be"),
        ("[1 2]", "found `2` after a value, where `,` should be"),
        ("[\"a\" \"b\"]", "found `\"` after a value, where `,` should be"),
    ] {
        assert!(refused("array", input).contains(why), "{input}: {}", refused("array", input));
    }
}

#[test]
fn a_named_array_of_a_top_level_object_becomes_lines_and_the_rest_is_skipped() {
    let cloudtrail = "{\"Before\": {\"Records\": [\"no\"]}, \"Records\": [{\"eventName\":\"A\"},\n{\"eventName\":\"B\"}], \"After\": [1,{\"x\":\"}\"}]}";
    assert_eq!(lines("array:Records", cloudtrail).unwrap(), "{\"eventName\":\"A\"}\n{\"eventName\":\"B\"}\n");
    assert_eq!(lines("array:Records", "{\"Records\":[]}").unwrap(), "");
    for (input, why) in [
        ("{\"Other\":[]}", "the object holds no \"Records\" array"),
        ("[{\"a\":1}]", "found `[` where an object holding \"Records\" should be"),
        ("{\"Records\":{\"a\":1}}", "found `{` where the records' array should be"),
        ("{\"Records\" [1]}", "found `[` where `:` after a key should be"),
        ("{\"Records\":[1] \"x\":2}", "found `\"` where `,` or `}` after a value should be"),
        ("{\"Records\":[1]", "ends before its closing bracket"),
        ("{\"Records\":[{\"a\":1}],\"Records\":[{\"b\":2}]}", "holds \"Records\" twice"),
        ("{\"Records\":[{\"a\":1} {\"b\":2}]}", "found `{` after a value, where `,` should be"),
    ] {
        assert!(refused("array:Records", input).contains(why), "{input}: {}", refused("array:Records", input));
    }
}

#[test]
fn a_partial_byte_order_mark_is_kept_and_skipped_bytes_count_toward_the_limit() {
    // Not a byte order mark: its first byte stays, a record of its own for the decoder to refuse.
    let framed = Framing::Concatenated.to_lines(b"\xEF{\"a\":1}").unwrap();
    assert_eq!(framed, b"\xEF\n{\"a\":1}\n");
    // A gigabyte of a key skipped makes no lines, but is read: the limit counts it.
    let skipped = format!("{{\"x\":\"{}\",\"Records\":[]}}", "a".repeat(1 << 16));
    let framing: Framing = "array:Records".parse().unwrap();
    let err = framing.lines_of(skipped.as_bytes(), 4096).read_to_end(&mut Vec::new()).unwrap_err();
    assert!(err.get_ref().unwrap().is::<InputTooLarge>());
    assert!(framing.lines_of(skipped.as_bytes(), 1 << 20).read_to_end(&mut Vec::new()).is_ok());
}
