//! What the shop sells and who uses it: a fixed demo catalogue, the way a real marketplace's
//! database would answer it.

/// Someone with an account at the shop. `id` is the marketplace's id for them, which Parley
/// knows as their *external id* (the token's `sub`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    /// The Parley username wished for when their account is made.
    pub(crate) username: &'static str,
    pub(crate) seller: bool,
}

/// Something for sale, by one seller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Product {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// A decimal string, as Parley's cards want it (never a float).
    pub(crate) price: &'static str,
    pub(crate) currency: &'static str,
    pub(crate) seller: &'static str,
    /// The picture's colour (the shop draws its pictures itself).
    pub(crate) colour: &'static str,
}

/// An order of one product by one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) id: &'static str,
    pub(crate) product: &'static str,
    pub(crate) customer: &'static str,
}

pub(crate) const PEOPLE: &[Person] = &[
    Person {
        id: "s-ann",
        name: "Ann's Ceramics",
        username: "ann",
        seller: true,
    },
    Person {
        id: "s-dan",
        name: "Dan's Woodshop",
        username: "dan",
        seller: true,
    },
    Person {
        id: "c-bob",
        name: "Bob",
        username: "bob",
        seller: false,
    },
    Person {
        id: "c-cleo",
        name: "Cleo",
        username: "cleo",
        seller: false,
    },
];

pub(crate) const PRODUCTS: &[Product] = &[
    Product {
        id: "vase-7",
        title: "Blue glazed vase",
        price: "24.00",
        currency: "EUR",
        seller: "s-ann",
        colour: "#3b6fb6",
    },
    Product {
        id: "bowl-2",
        title: "Stoneware bowl",
        price: "18.50",
        currency: "EUR",
        seller: "s-ann",
        colour: "#b7794a",
    },
    Product {
        id: "lamp-3",
        title: "Walnut desk lamp",
        price: "89.00",
        currency: "EUR",
        seller: "s-dan",
        colour: "#6b4a2f",
    },
];

pub(crate) const ORDERS: &[Order] = &[Order {
    id: "1042",
    product: "vase-7",
    customer: "c-bob",
}];

pub(crate) fn person(id: &str) -> Option<&'static Person> {
    PEOPLE.iter().find(|p| p.id == id)
}

pub(crate) fn product(id: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}

pub(crate) fn order(id: &str) -> Option<&'static Order> {
    ORDERS.iter().find(|o| o.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_product_and_order_points_at_someone_who_exists() {
        for product in PRODUCTS {
            assert!(
                person(product.seller).is_some_and(|p| p.seller),
                "{product:?}"
            );
        }
        for order in ORDERS {
            let product = product(order.product).unwrap();
            assert!(
                person(order.customer).is_some_and(|p| !p.seller),
                "{order:?}"
            );
            assert_ne!(product.seller, order.customer);
        }
    }
}
