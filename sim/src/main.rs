fn main() {
    eprintln!("shepherd-sim: the simulator is not implemented yet");
    std::process::exit(2);
}
