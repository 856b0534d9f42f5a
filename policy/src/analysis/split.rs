//! Splitting a token stream into statements at top-level `;`.
//!
//! Semicolons inside strings, dollar quotes, quoted identifiers and comments are already
//! inside single tokens. Like psql, a `;` inside parentheses, or inside the
//! `BEGIN ATOMIC ... END` body of `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, does not end a
//! statement; a piece that is then not one statement fails to parse (fail closed).

use sqlparser::tokenizer::{Token, TokenWithSpan};

/// The statements of `tokens`, without their `;`; pieces holding only whitespace and
/// comments are dropped.
pub(super) fn split(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut pieces = Vec::new();
    let mut current = Vec::new();
    let mut state = State::default();
    for token in tokens {
        if token.token == Token::SemiColon && state.parens == 0 && state.begin_depth == 0 {
            push_piece(&mut pieces, std::mem::take(&mut current));
            state = State::default();
            continue;
        }
        state.note(&token.token);
        current.push(token);
    }
    push_piece(&mut pieces, current);
    pieces
}

fn push_piece(pieces: &mut Vec<Vec<TokenWithSpan>>, piece: Vec<TokenWithSpan>) {
    if piece
        .iter()
        .any(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
    {
        pieces.push(piece);
    }
}

/// psql's heuristic for function bodies: the statement starts
/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, and outside parentheses `BEGIN` opens a
/// block, `CASE` nests inside one and `END` closes one.
#[derive(Default)]
struct State {
    parens: usize,
    begin_depth: usize,
    /// The first four unquoted words, lower-cased.
    words: Vec<String>,
}

impl State {
    fn note(&mut self, token: &Token) {
        match token {
            Token::LParen => self.parens += 1,
            Token::RParen => self.parens = self.parens.saturating_sub(1),
            Token::Word(w) if w.quote_style.is_none() => {
                let word = w.value.to_ascii_lowercase();
                if self.words.len() < 4 {
                    self.words.push(word.clone());
                }
                if self.parens == 0 && self.defines_routine() {
                    match word.as_str() {
                        "begin" => self.begin_depth += 1,
                        "case" if self.begin_depth > 0 => self.begin_depth += 1,
                        "end" if self.begin_depth > 0 => self.begin_depth -= 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn defines_routine(&self) -> bool {
        let routine =
            |w: Option<&String>| matches!(w.map(String::as_str), Some("function" | "procedure"));
        self.words.first().map(String::as_str) == Some("create")
            && (routine(self.words.get(1))
                || (self.words.get(1).map(String::as_str) == Some("or")
                    && self.words.get(2).map(String::as_str) == Some("replace")
                    && routine(self.words.get(3))))
    }
}
