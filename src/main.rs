fn main() {
    println!("graphbridge");
}
