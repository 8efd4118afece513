//! Keys and a one-line live status for `refrain play` on a terminal. Raw mode holds only while
//! the session plays: it is restored when the console is dropped (a normal exit or an error
//! returning through `run`) and by a panic hook. Without a terminal (pipes, tests) the console
//! prints plain lines and reads no keys.

use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal;
use std::io::{IsTerminal, Write};
use std::sync::Once;
use std::time::Duration;

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Louder,
    Softer,
    NextMood,
    NextStyle,
    NextSection,
    PauseOrResume,
    Save,
    Quit,
}

/// The keys, as the status line's help shows them.
pub const HELP: &str =
    "up/+ down/- intensity  m mood  s style  n next section  space pause  w save  q quit";

impl Action {
    fn from_event(key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        Some(match key.code {
            // Raw mode turns Ctrl-C into a key: it quits, as it would without raw mode.
            KeyCode::Char('c') if control => Action::Quit,
            KeyCode::Up | KeyCode::Char('+') | KeyCode::Char('=') => Action::Louder,
            KeyCode::Down | KeyCode::Char('-') | KeyCode::Char('_') => Action::Softer,
            KeyCode::Char('m') => Action::NextMood,
            KeyCode::Char('s') => Action::NextStyle,
            KeyCode::Char('n') => Action::NextSection,
            KeyCode::Char(' ') => Action::PauseOrResume,
            KeyCode::Char('w') => Action::Save,
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            _ => return None,
        })
    }
}

/// Where `play` prints: plain lines, or a terminal with keys and a status line.
pub enum Console {
    Plain,
    Terminal { status: String },
}

impl Console {
    /// A terminal console when stdin is a terminal, else plain lines.
    pub fn open() -> Result<Console> {
        if !std::io::stdin().is_terminal() {
            return Ok(Console::Plain);
        }
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = terminal::disable_raw_mode();
                previous(info);
            }));
        });
        terminal::enable_raw_mode().context("switching the terminal to raw mode for keys")?;
        let console = Console::Terminal {
            status: String::new(),
        };
        Ok(console)
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Console::Terminal { .. })
    }

    /// The keys pressed since the last call; never waits.
    pub fn keys(&mut self) -> Vec<Action> {
        let mut keys = Vec::new();
        if self.is_terminal() {
            while let Ok(true) = event::poll(Duration::ZERO) {
                if let Ok(Event::Key(key)) = event::read()
                    && let Some(key) = Action::from_event(key)
                {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// Prints a line (above the status line on a terminal).
    pub fn line(&mut self, text: &str) {
        match self {
            Console::Plain => eprintln!("{text}"),
            Console::Terminal { status } => {
                let mut err = std::io::stderr().lock();
                // Raw mode: return to the line start and clear it, end lines with \r\n.
                let _ = write!(err, "\r\x1b[K{text}\r\n{status}");
                let _ = err.flush();
            }
        }
    }

    /// Redraws the status line in place (a terminal only).
    pub fn status(&mut self, text: &str) {
        if let Console::Terminal { status } = self {
            // A terminal that does not say its width (0) gets 100 columns.
            let width = match terminal::size() {
                Ok((w, _)) if w >= 20 => usize::from(w) - 1,
                _ => 100,
            };
            let line: String = text.chars().take(width).collect();
            if *status == line {
                return;
            }
            *status = line;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{status}");
            let _ = err.flush();
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if self.is_terminal() {
            let _ = terminal::disable_raw_mode();
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_controls() {
        let press = |code| Action::from_event(KeyEvent::new(code, KeyModifiers::NONE));
        assert_eq!(press(KeyCode::Up), Some(Action::Louder));
        assert_eq!(press(KeyCode::Char('+')), Some(Action::Louder));
        assert_eq!(press(KeyCode::Char('-')), Some(Action::Softer));
        assert_eq!(press(KeyCode::Down), Some(Action::Softer));
        assert_eq!(press(KeyCode::Char('m')), Some(Action::NextMood));
        assert_eq!(press(KeyCode::Char('s')), Some(Action::NextStyle));
        assert_eq!(press(KeyCode::Char('n')), Some(Action::NextSection));
        assert_eq!(press(KeyCode::Char(' ')), Some(Action::PauseOrResume));
        assert_eq!(press(KeyCode::Char('w')), Some(Action::Save));
        assert_eq!(press(KeyCode::Char('q')), Some(Action::Quit));
        assert_eq!(press(KeyCode::Char('x')), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(Action::from_event(ctrl_c), Some(Action::Quit));
    }
}
