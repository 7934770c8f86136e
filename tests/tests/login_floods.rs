//! Floods of logins against running servers (embedded store, and two
//! instances on Redis): guesses in parallel cannot check more passwords than
//! the lockout allows, a flood cannot starve allocation of the threads it
//! needs, and a disabled account's answer does not tell whether the
//! password was right.

use kxy_e2e::api::{Answer, allocate};
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use serde_json::json;

async fn login_all(d: &Deployment, attempts: &[(String, String)]) -> Vec<Answer> {
    futures::future::join_all(
        attempts
            .iter()
            .map(|(user, password)| d.login(user, password)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_checks_at_most_the_threshold() {
    for d in Deployment::all(&["--lockout-threshold", "5"]) {
        d.init().await;
        let guesses: Vec<(String, String)> = (0..40)
            .map(|n| ("root".to_owned(), format!("guess number {n}")))
            .collect();
        let answers = login_all(&d, &guesses).await;
        // 401 means the password was checked and was wrong; 429 means it
        // was refused unchecked (or checked as the one that locked).
        let checked = answers.iter().filter(|a| a.status == 401).count();
        let locked = answers.iter().filter(|a| a.status == 429).count();
        assert_eq!(
            checked + locked,
            40,
            "{}: {:?}",
            d.name,
            answers.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        assert!(
            checked < 5,
            "{}: {checked} guesses checked before the lock",
            d.name
        );
        // The right password now meets the lock too.
        assert_eq!(
            d.login("root", ROOT_PASSWORD).await.status,
            429,
            "{}",
            d.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_turned_away_and_allocation_goes_on() {
    for d in Deployment::all(&["--auto-create"]) {
        d.init().await;
        // Distinct unknown users: no lockout ever stops them, only the
        // bound on concurrent hashing.
        let flood: Vec<(String, String)> = (0..300)
            .map(|n| (format!("nobody{n}"), "some password 1".to_owned()))
            .collect();
        let http = reqwest::Client::new();
        let urls: Vec<String> = d.servers.iter().map(|s| s.base_url().to_owned()).collect();
        let allocations = async {
            let mut answers = Vec::new();
            for n in 0..40 {
                let url = &urls[n % urls.len()];
                answers.push(allocate(&http, url, "orders", "id", 10).await.unwrap());
            }
            answers
        };
        let (logins, allocations) = tokio::join!(login_all(&d, &flood), allocations);
        for answer in &allocations {
            assert_eq!(answer.status, 200, "{}: {:?}", d.name, answer.body);
        }
        let busy: Vec<&Answer> = logins.iter().filter(|a| a.status == 503).collect();
        assert!(!busy.is_empty(), "{}: no login was turned away", d.name);
        for answer in &busy {
            assert_eq!(answer.code(), 50306, "{:?}", answer.body);
        }
        for answer in logins.iter().filter(|a| a.status != 503) {
            assert_eq!(answer.status, 401, "{:?}", answer.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_answers_alike_for_right_and_wrong_passwords() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        let bob = d.create_user(&root, "bob", "bob password 1", &[]).await;
        let off = d
            .call(
                reqwest::Method::PUT,
                &format!("/api/users/{bob}"),
                Some(json!({"active": false})),
                Some(&root),
            )
            .await;
        assert_eq!(off.status, 200, "{:?}", off.body);
        let right = d.login("bob", "bob password 1").await;
        let wrong = d.login("bob", "not bob's password 1").await;
        assert_eq!(
            (right.status, right.code(), right.msg()),
            (wrong.status, wrong.code(), wrong.msg()),
            "{}",
            d.name
        );
    }
}
