fn main() {
    println!("watchdog: not yet");
}
