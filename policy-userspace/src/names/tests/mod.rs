mod build;
mod dns;
mod domain;
mod frame;
mod fuzz;
mod learned;
mod learner;
mod tls;
