//! The SMTP connection's byte stream: plain TCP until STARTTLS (or TLS from the start on the
//! implicit TLS port).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the TLS handshake runs.
    Upgrading,
}

impl Conn {
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.read(buf).await,
            Conn::Tls(tls) => tls.read(buf).await,
            Conn::Upgrading => Ok(0),
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.write_all(bytes).await,
            Conn::Tls(tls) => {
                tls.write_all(bytes).await?;
                tls.flush().await
            }
            Conn::Upgrading => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// Runs the TLS handshake on a plain connection.
    pub async fn upgrade(&mut self, acceptor: &TlsAcceptor) -> std::io::Result<()> {
        match std::mem::replace(self, Conn::Upgrading) {
            Conn::Plain(tcp) => {
                let tls = acceptor.accept(tcp).await?;
                *self = Conn::Tls(Box::new(tls));
                Ok(())
            }
            other => {
                *self = other;
                Err(std::io::ErrorKind::InvalidInput.into())
            }
        }
    }
}
