//! A 5x7 bitmap font for the class challenge's secret phrases, and the renderer that turns a phrase into an
//! 8-bit grey image (ink 255, background 0). The alphabet leaves out characters that are easily confused
//! at this size (B/8, G/6, I/1, O/0/Q, S/5, Z/2), so a phrase read off a recovered image is unambiguous.

/// The characters a phrase is drawn from.
pub const ALPHABET: &str = "ACDEFHJKLMNPRTUVWXY3479";

/// Glyph width and height in font pixels.
const GLYPH: (usize, usize) = (5, 7);
/// Each font pixel becomes `SCALE x SCALE` image pixels.
const SCALE: usize = 2;
/// Blank image pixels around the text and between characters.
const MARGIN: usize = 2;
const GAP: usize = 2;

/// The rows of one glyph, `#` for ink.
fn glyph(c: char) -> Option<[&'static str; 7]> {
    Some(match c {
        'A' => [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        'C' => [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
        'D' => ["####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."],
        'E' => ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
        'F' => ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
        'H' => ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        'J' => ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
        'K' => ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
        'L' => ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
        'M' => ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
        'N' => ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"],
        'P' => ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
        'R' => ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
        'T' => ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
        'U' => ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
        'V' => ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
        'W' => ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],
        'X' => ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
        'Y' => ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
        '3' => ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
        '4' => ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
        '7' => ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
        '9' => [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
        _ => return None,
    })
}

/// Image shape `[rows, cols]` of a phrase of `len` characters.
pub fn shape(len: usize) -> [usize; 2] {
    let rows = 2 * MARGIN + GLYPH.1 * SCALE;
    let cols = 2 * MARGIN + len * GLYPH.0 * SCALE + len.saturating_sub(1) * GAP;
    [rows, cols]
}

/// Renders `phrase` (characters of [`ALPHABET`]) as 8-bit pixels, row-major, of [`shape`]`(len)`.
/// `None` if a character has no glyph.
pub fn render(phrase: &str) -> Option<Vec<u8>> {
    let chars: Vec<char> = phrase.chars().collect();
    let [rows, cols] = shape(chars.len());
    let mut pixels = vec![0u8; rows * cols];
    for (k, &c) in chars.iter().enumerate() {
        let g = glyph(c)?;
        let x0 = MARGIN + k * (GLYPH.0 * SCALE + GAP);
        for (gy, row) in g.iter().enumerate() {
            for (gx, b) in row.bytes().enumerate() {
                if b != b'#' {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        pixels[(MARGIN + gy * SCALE + dy) * cols + x0 + gx * SCALE + dx] = 255;
                    }
                }
            }
        }
    }
    Some(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_of_the_alphabet_has_a_distinct_well_formed_glyph() {
        let mut seen = std::collections::HashSet::new();
        for c in ALPHABET.chars() {
            let g = glyph(c).unwrap_or_else(|| panic!("no glyph for {c}"));
            assert!(g.iter().all(|r| r.len() == 5 && r.bytes().all(|b| b == b'#' || b == b'.')), "{c}");
            assert!(seen.insert(g), "{c} looks like another character");
        }
        assert_eq!(glyph('O'), None);
    }

    #[test]
    fn render_places_each_glyph_in_its_cell() {
        let [rows, cols] = shape(2);
        assert_eq!([rows, cols], [18, 26]);
        let px = render("LT").unwrap();
        assert_eq!(px.len(), rows * cols);
        // 'L' has its left column inked top to bottom; 'T' its top row.
        for y in MARGIN..MARGIN + 14 {
            assert_eq!(px[y * cols + MARGIN], 255);
        }
        let t0 = MARGIN + 10 + GAP;
        assert!((t0..t0 + 10).all(|x| px[MARGIN * cols + x] == 255));
        assert!(px[..MARGIN * cols].iter().all(|&p| p == 0), "top margin is blank");
        assert_eq!(render("LO"), None);
    }
}
