mod build;
mod dns;
mod domain;
mod frame;
mod learned;
mod tls;
